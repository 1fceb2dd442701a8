"""Metaflow's `Config` and `config_expr`: values fixed before a run starts, usable anywhere.

A `Config("name", default=PATH | default_value=VALUE, parser=..., required=...)`
on a flow class is read once, before the run: from `--config name PATH` or
`--config-value name JSON` on the command line, else from `$METAFLOW_FLOW_CONFIG`
/ `$METAFLOW_FLOW_CONFIG_VALUE` (JSON objects of name -> path / value, Metaflow's
variables), else from its default (a file path, or a value; either may be a
function of a context). Text is parsed as JSON unless a `parser` is given.

Inside a step `self.name` is an immutable `ConfigValue` (`cfg.a.b` or
`cfg["a"]["b"]`), stored as an artifact like a parameter. In the class body,
where no value exists yet, `name.attr` and `config_expr("expression")` are
*delayed*: decorators (`@environment(vars={"x": cfg.x})`, `@project(name=...)`,
`**cfg` unpacking) and parameter defaults keep them and the engine evaluates
them once the configs are read (`resolve_delayed`).
"""

from __future__ import annotations

import collections.abc
import copy
import importlib
import inspect
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flowdeck.authoring.exceptions import MetaflowException
from flowdeck.compiled_dataclasses import dataclass

ID_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
#: The key `**config` unpacks to; decorators replace it by the evaluated mapping.
UNPACK_KEY = "_unpacked_delayed_"
CONFIG_FILES_ENV = "METAFLOW_FLOW_CONFIG"
CONFIG_VALUES_ENV = "METAFLOW_FLOW_CONFIG_VALUE"

#: name -> value of the configs read for the flow class being run (set by the engine).
_resolved: dict[str, Any] | None = None


class ConfigValue(dict):
    """An immutable nested mapping read with `.` or `[]`: `cfg.nested.value`.

    A dict subclass so `==` with a plain dict and `json.dumps` work; every
    change raises TypeError, as Metaflow's does.
    """

    def __init__(self, data: Mapping[str, Any]):
        object.__setattr__(self, "_data", {k: _construct(v) for k, v in data.items()})
        super().__init__(self._data)

    def to_dict(self) -> dict[str, Any]:
        """A plain (mutable) copy, nested mappings included."""
        return _to_dict(self._data)

    def __getattr__(self, key: str) -> Any:
        if key == "_data":
            raise AttributeError(key)
        if key in self._data:
            return self._data[key]
        raise AttributeError(f"config has no key {key!r}; it has "
                             f"{', '.join(map(str, self._data)) or 'none'}")

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ConfigValue):
            return self._data == other._data
        return isinstance(other, dict) and self._data == other

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ConfigValue, (self.to_dict(),))

    def _immutable(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("ConfigValue is immutable: a config is fixed before the run starts. "
                        "Copy it with .to_dict() to change a copy.")

    __setattr__ = __setitem__ = __delattr__ = __delitem__ = _immutable
    clear = update = setdefault = pop = popitem = _immutable


def _construct(value: Any) -> Any:
    if isinstance(value, ConfigValue):
        return value
    if isinstance(value, Mapping):
        return ConfigValue(value)
    if isinstance(value, (list, tuple, set)):
        return type(value)(_construct(v) for v in value)
    return value


def _to_dict(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _to_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return type(value)(_to_dict(v) for v in value)
    return value


class DelayEvaluator(collections.abc.Mapping):
    """An expression over the flow's configs, evaluated once they are read.

    `config_expr("cfg").a.b` and `cfg["a"]` record the access path; `**expr`
    unpacks to one UNPACK_KEY entry that `unpack_delayed` expands later.
    """

    def __init__(self, expr: str, saved_globals: dict[str, Any] | None = None):
        self._expr = expr
        self._globals = saved_globals
        self._access: list[Any] | None = [] if ID_PATTERN.match(expr) else None

    def _extended(self, key: Any) -> "DelayEvaluator":
        clone = copy.copy(self)
        assert self._access is not None
        clone._access = [*self._access, key]
        return clone

    def __getattr__(self, name: str) -> "DelayEvaluator":
        if name.startswith("__") or self.__dict__.get("_access") is None:
            raise AttributeError(name)
        return self._extended(name)

    def __getitem__(self, key: Any) -> Any:
        if key == self._unpack_key:
            return self
        if self._access is None:
            raise KeyError(key)
        return self._extended(key)

    @property
    def _unpack_key(self) -> str:
        return f"{UNPACK_KEY}{id(self)}"

    def __iter__(self) -> Iterator[str]:
        yield self._unpack_key

    def __len__(self) -> int:
        return 1

    def __call__(self, ctx: Any = None, deploy_time: bool = False) -> Any:
        """The value, from the configs read for this run (a parameter default calls it too)."""
        if _resolved is None:
            raise MetaflowException(f"config_expr({self._expr!r}) can only be evaluated while "
                                    "the flow defining its configs runs (in its decorators, "
                                    "parameter defaults or steps).")
        text = self._expr
        for key in self._access or []:
            key = key() if isinstance(key, DelayEvaluator) else key
            text += f".{key}" if isinstance(key, str) and ID_PATTERN.match(key) else f"[{key!r}]"
        scope = {k: ConfigValue(v) if isinstance(v, Mapping) else v for k, v in _resolved.items()}
        try:
            return eval(text, self._globals or {}, scope)  # noqa: S307 - the flow's own text
        except Exception as exc:
            raise MetaflowException(f"Config expression '{text}' could not be evaluated: "
                                    f"{type(exc).__name__}: {exc}. Check the config names "
                                    f"({', '.join(_resolved) or 'none declared'}) and keys."
                                    ) from exc

    def __repr__(self) -> str:
        return f"config_expr({self._expr!r}{''.join(f'.{a}' for a in self._access or [])})"


def config_expr(expr: str) -> DelayEvaluator:
    """An expression over configs, for places a config is not in scope or a value is computed:
    `@project(name=config_expr("cfg").project)`, `config_expr("str(cfg.value)")`."""
    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    return DelayEvaluator(expr, saved_globals=caller.f_globals if caller else None)


class Config:
    """A configuration of the flow, read once before the run (see the module docstring).

    `default` is a path to read (or a function of a context returning one),
    `default_value` a value (a dict, JSON text, or a function returning either);
    give one of them, not both. `parser` turns the text into a mapping (a
    callable, or "module.function"). `plain=True` keeps the parsed value as it
    is instead of a ConfigValue.
    """

    IS_CONFIG_PARAMETER = True

    def __init__(self, name: str, default: Any = None, default_value: Any = None,
                 help: str | None = None, required: bool | None = None,
                 parser: str | Callable[[str], Any] | None = None, plain: bool = False,
                 **kwargs: Any):
        if default is not None and default_value is not None:
            raise MetaflowException(f"Config `{name}` takes `default` (a file path) or "
                                    "`default_value` (a value), not both. Keep one.")
        self.name = name
        self.attribute = name
        self.default = default
        self.default_value = default_value
        self.help = help or ""
        self.required = bool(required)
        self.parser = parser
        self.plain = plain
        self.extra = kwargs

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        ctx = obj.__dict__.get("_fd_ctx")
        if ctx is not None and self.attribute in ctx.params:
            value = ctx.params[self.attribute]
        elif _resolved is not None and self.name in _resolved:
            value = _resolved[self.name]
        else:
            raise AttributeError(f"Config `{self.name}` has no value here: configs are read "
                                 "when the flow runs.")
        return value if value is None or self.plain else _construct(value)

    def __set__(self, obj: Any, value: Any) -> None:
        raise TypeError(f"`{self.attribute}` is a Config, and configs are immutable; store the "
                        "value under another name.")

    # In the class body no value exists yet: `cfg.x`, `cfg["x"]` and `**cfg` are delayed.
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(DelayEvaluator(self.name), name)

    def __getitem__(self, key: Any) -> Any:
        evaluator = self._evaluator()
        if isinstance(key, str) and key.startswith(UNPACK_KEY):
            return evaluator[key]
        return DelayEvaluator(self.name)[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._evaluator())

    def keys(self) -> Iterator[str]:
        return iter(self._evaluator())

    def __len__(self) -> int:
        return 1

    def _evaluator(self) -> DelayEvaluator:
        ev = self.__dict__.get("_delayed")
        if ev is None:
            ev = self.__dict__["_delayed"] = DelayEvaluator(self.name)
        return ev

    def __repr__(self) -> str:
        return f"Config({self.name!r})"


def flow_configs(flow_cls: type) -> dict[str, Config]:
    """The configs of a flow class, by attribute (inherited ones included)."""
    out: dict[str, Config] = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Config):
                out[attr] = value
    return out


# -- reading the values ------------------------------------------------------------------

@dataclass
class ConfigSources:
    """What the command line gave: `--config NAME PATH` and `--config-value NAME JSON`."""

    files: dict[str, str]
    values: dict[str, str]


def _env_mapping(var: str) -> dict[str, str]:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise MetaflowException(f"${var} is not a JSON object ({exc}). Set it to "
                                '\'{"config_name": ...}\' or unset it.') from None
    if not isinstance(data, dict):
        raise MetaflowException(f"${var} is a JSON {type(data).__name__}, not an object of "
                                "config name -> value. Fix or unset it.")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def _read_file(path: str, name: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise MetaflowException(f"The {what} of config `{name}`, {path}, cannot be read "
                                f"({exc.strerror or exc}). Check the path (relative to "
                                f"{os.getcwd()}).") from None


def _context(flow_cls: type, name: str) -> Any:
    from types import SimpleNamespace

    from flowdeck.authoring.values import username
    return SimpleNamespace(flow_name=flow_cls.__name__, parameter_name=name,
                           user_name=username(), logger=print, ds_type="local", configs=None)


def _parse(config: Config, text: str) -> Any:
    parser = config.parser
    if parser is None:
        if config.plain:
            return text
        try:
            return json.loads(text)
        except ValueError as exc:
            raise MetaflowException(f"The value of config `{config.name}` is not valid JSON "
                                    f"({exc}). Give JSON, or a `parser=` for its format."
                                    ) from None
    if isinstance(parser, str):
        module, _, func = (("metaflow" + parser) if parser.startswith(".") else parser
                           ).rpartition(".")
        try:
            parser = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError, ValueError):
            raise MetaflowException(f"Config `{config.name}`: parser {config.parser!r} cannot "
                                    "be found. Name a function as 'package.module.function'."
                                    ) from None
    assert callable(parser)
    value = parser(text)
    if not config.plain and not isinstance(value, Mapping):
        raise MetaflowException(f"The parser of config `{config.name}` returned a "
                                f"{type(value).__name__}, not a mapping. Return a dict, or "
                                "declare the config with plain=True.")
    return value


def _default_text(flow_cls: type, config: Config) -> str | Mapping[str, Any] | None:
    """The default of a config: a file's text, a value, or None."""
    if config.default is not None:
        path = config.default
        if callable(path):
            path = path(_context(flow_cls, config.name))
        return _read_file(str(path), config.name, "default file")
    value = config.default_value
    if callable(value) and not isinstance(value, type):
        value = value(_context(flow_cls, config.name))
    return value


def read_configs(flow_cls: type, sources: ConfigSources | None = None) -> dict[str, Any]:
    """Every config's value by name, by precedence: command line, environment, default.

    Raises MetaflowException naming the config for a missing required one, a
    file that cannot be read or a value that does not parse.
    """
    sources = sources or ConfigSources({}, {})
    configs = flow_configs(flow_cls)
    files = {**_env_mapping(CONFIG_FILES_ENV), **sources.files}
    values = {**_env_mapping(CONFIG_VALUES_ENV), **sources.values}
    known = {c.name for c in configs.values()}
    unknown = sorted((set(files) | set(sources.values)) - known)
    if unknown:
        raise MetaflowException(f"{flow_cls.__name__} has no config {', '.join(unknown)} (its "
                                f"configs: {', '.join(sorted(known)) or 'none'}).")
    both = sorted(set(sources.files) & set(sources.values))
    if both:
        raise MetaflowException(f"Config {', '.join(both)} is given both as a file and as a "
                                "value; give one.")
    out: dict[str, Any] = {}
    for config in configs.values():
        name = config.name
        raw: Any
        if name in values:
            raw = values[name]
        elif name in files:
            raw = _read_file(files[name], name, "file")
        else:
            raw = _default_text(flow_cls, config)
        if raw is None:
            if config.required:
                raise MetaflowException(f"Config `{name}` is required. Pass `--config {name} "
                                        f"FILE` or `--config-value {name} JSON`.")
            out[name] = None
            continue
        parsed = _parse(config, raw) if isinstance(raw, str) else raw
        out[name] = _to_dict(parsed) if isinstance(parsed, Mapping) else parsed
    return out


def install(values: dict[str, Any] | None) -> None:
    """Make `values` the configs every delayed expression evaluates against (None: none)."""
    global _resolved
    _resolved = dict(values) if values is not None else None


def resolved() -> dict[str, Any] | None:
    return _resolved


def resolve_delayed(value: Any) -> Any:
    """`value` with every delayed expression in it evaluated (dicts, lists, tuples, sets)."""
    if isinstance(value, DelayEvaluator):
        return _plain(value())
    if isinstance(value, dict):
        return {resolve_delayed(k): resolve_delayed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return type(value)(resolve_delayed(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    """A config's value as plain dicts and lists, however deep (a list of its mappings kept
    ConfigValues, which a run's record cannot store)."""
    if isinstance(value, ConfigValue):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def unpack_delayed(attributes: dict[str, Any]) -> dict[str, Any]:
    """Decorator keyword arguments with `**config` entries expanded and delayed values
    evaluated."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if isinstance(key, str) and key.startswith(UNPACK_KEY):
            expanded = resolve_delayed(value)
            if not isinstance(expanded, Mapping):
                raise MetaflowException(f"`**{value!r}` unpacks a {type(expanded).__name__}, "
                                        "not a mapping of keyword arguments.")
            out.update(expanded)
        else:
            out[key] = resolve_delayed(value)
    return out


def has_delayed(value: Any) -> bool:
    """Whether `value` holds a delayed expression anywhere (cheap for plain values)."""
    if isinstance(value, DelayEvaluator):
        return True
    if isinstance(value, dict):
        return any(has_delayed(k) or has_delayed(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return any(has_delayed(v) for v in value)
    return False
