"""From a flow class to a run: static graph, parameters, datastore, orchestrator.

This is where `MyFlow().run()`, Metaflow's bare `MyFlow()` and the script
command line meet. It decides whether the command line belongs to us (the
flow file is the script being run) or not (the flow was imported by another
program, whose `sys.argv` we must never read).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flowdeck.analysis.diagnostics import (
    UNDEFINED_DECORATOR,
    Diagnostic,
    FlowDefinitionError,
    UsageError,
    has_errors,
)
from flowdeck.analysis.flowfile import analyze_file, analyze_source, extend_step
from flowdeck.analysis.graph import (
    DecoratorInfo,
    FlowGraph,
    build_graph,
    deindent_docstring,
    parse_step,
)
from flowdeck.analysis.lint import FLOWDECK_ENGINE_NEEDS, lint_graph
from flowdeck.analysis.parameter_text import separated
from flowdeck.authoring.exceptions import MetaflowException
from flowdeck.authoring.runsetup import (
    RunContext,
    RunSetup,
    begin_run,
    constant_values,
    print_notices,
)
from flowdeck.authoring.spec import Parameter, flow_parameters, flow_steps, step_decorators
from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engine.executors.base import EXECUTOR_ENV, Executor
from flowdeck.engine.runtime import Orchestrator, OriginRun, RunOptions, RunOutcome
from flowdeck.store.blobs import BlobRef, BlobStore
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import (
    DATASTORE_ENV,
    ROOT_ENV,
    InvalidId,
    RunLayout,
    check_id,
    datastore_of,
    is_store_url,
    new_run_id,
    normal_url,
    store_url_problem,
)
from flowdeck.store.liveness import own_start_ticks
from flowdeck.store.records import AttemptRecord, RunRecord, hostname
from flowdeck.store.status import RUNNING


@dataclass
class PreparedFlow:
    """A flow class with its static graph and where its runs are stored."""

    flow_cls: type
    graph: FlowGraph
    file: str
    layout: RunLayout
    diagnostics: list[Diagnostic]


def prepare(flow_cls: type) -> PreparedFlow:
    """Static graph and lint of a live flow class; raises FlowDefinitionError on errors."""
    file = _source_file(flow_cls)
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if flow_cls.__module__ == "__main__" and main_file and \
            os.path.realpath(main_file) == os.path.realpath(file):
        _check_script_unchanged(file)  # first: a half-saved file says nothing else useful
    graph, diagnostics = _static_graph(flow_cls, file)
    # The class is defined: each decorator's name was found, however the file binds it
    # (`globals()[...] = ...`), so the lint's guess that one is undefined does not stand.
    diagnostics = [d for d in diagnostics if d.code != UNDEFINED_DECORATOR]
    # What Metaflow's engine runs but this one cannot (a warning for a Metaflow flow).
    diagnostics = [dataclasses.replace(d, severity="error") if d.code in FLOWDECK_ENGINE_NEEDS
                   else d for d in diagnostics]
    if has_errors(diagnostics):
        raise FlowDefinitionError(f"{flow_cls.__name__} in {file} has errors; fix them and "
                                  "run again.", diagnostics)
    flow_cls._fd_graph = graph  # type: ignore[attr-defined]  # `flow._graph` in the tasks
    return PreparedFlow(flow_cls, graph, file, RunLayout.for_file(file, flow_cls.__name__),
                        diagnostics)


#: Python reads the script some tens of milliseconds after the process starts; a file
#: saved this long after the start cannot have been the one it read.
_SAVED_AFTER_START_S = 0.02


def _check_script_unchanged(file: str) -> None:
    """UsageError when the script was saved after this process started.

    Its graph, lint and the step hashes recorded for the run (which rerun-on-save and
    resume trust to reuse tasks) come from reading the file now; the code that runs was
    read at the start. A save in between made a run record the hashes of code it did not
    run (found by reliability/save_storms.py: a run of version 53 recorded version 56).
    """
    started = _process_start_time()
    try:
        saved = os.stat(file).st_mtime
    except OSError:
        return
    # A time after now is no save during the start: a file dated in the future (an archive,
    # another machine's clock) must run as before.
    if started is not None and started + _SAVED_AFTER_START_S < saved <= time.time():
        raise UsageError(f"{file} was saved after this run started, so the code Python "
                         "loaded is not the code in the file. Run the flow again.")


def _process_start_time() -> float | None:
    """When this process started (epoch seconds, to about 10 ms), from /proc; None elsewhere."""
    ticks = own_start_ticks()
    if ticks is None:
        return None
    try:
        with open("/proc/uptime", "rb") as handle:
            uptime = float(handle.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def static_graph(flow_cls: type) -> FlowGraph:
    """The graph of a flow class, lint errors or not (for `flow._graph` outside a run)."""
    return _static_graph(flow_cls, _source_file(flow_cls))[0]


def _source_file(flow_cls: type) -> str:
    try:
        return str(Path(inspect.getsourcefile(flow_cls) or inspect.getfile(flow_cls)).resolve())
    except (TypeError, OSError):
        main = sys.modules.get("__main__")
        return str(Path(getattr(main, "__file__", None) or Path.cwd() / "flow.py").resolve())


def _static_graph(flow_cls: type, file: str) -> tuple[FlowGraph, list[Diagnostic]]:
    """The graph from the file's AST; from the class's own source if the file can't tell."""
    live_steps = set(flow_steps(flow_cls))
    info = analyze_file(file).flow(flow_cls.__name__) if Path(file).is_file() else None
    if info is not None and set(info.graph.nodes) == live_steps:
        return info.graph, info.diagnostics
    graph = _graph_from_class(flow_cls, file)
    import textwrap
    params = analyze_source(textwrap.dedent(_safe_getsource(flow_cls)), file).flows
    return graph, lint_graph(graph, params[0].parameters if params else [])


def _safe_getsource(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def _graph_from_class(flow_cls: type, file: str) -> FlowGraph:
    """Metaflow's way: parse each step method's own source (inherited ones too)."""
    nodes = []
    for name, func in flow_steps(flow_cls).items():
        try:
            lines, first = inspect.getsourcelines(func)
        except (OSError, TypeError):
            raise FlowDefinitionError(f"Cannot read the source of step `{name}` of "
                                      f"{flow_cls.__name__}; define the flow in a .py file."
                                      ) from None
        import textwrap
        source = "\n" * (first - 1) + textwrap.dedent("".join(lines))
        tree = ast.parse(source)
        func_ast = tree.body[0]
        assert isinstance(func_ast, (ast.FunctionDef, ast.AsyncFunctionDef))
        decorators = [DecoratorInfo(deco, dict(attributes or {}))
                      for deco, attributes in step_decorators(func).items()]
        nodes.append(extend_step(func_ast, parse_step(func_ast, source, decorators)))
    return build_graph(flow_cls.__name__, file, _class_line(flow_cls),
                       deindent_docstring(flow_cls.__doc__), nodes)


def _class_line(flow_cls: type) -> int:
    try:
        return inspect.getsourcelines(flow_cls)[1]
    except (OSError, TypeError):
        return 1


# -- parameters -------------------------------------------------------------

def parameter_lookup(flow_cls: type) -> dict[str, str]:
    """Every accepted spelling of a parameter (name, attribute, dashed) -> attribute."""
    names: dict[str, str] = {}
    for attr, param in flow_parameters(flow_cls).items():
        for spelling in (param.name, attr):
            names[spelling] = attr
            names[spelling.replace("_", "-")] = attr
    return names


def resolve_parameters(flow_cls: type, given: dict[str, Any]) -> dict[str, Any]:
    """Typed parameter values (by attribute) from given values, the environment (Metaflow's
    `$METAFLOW_RUN_<NAME>`), defaults and `required`."""
    params = flow_parameters(flow_cls)
    lookup = parameter_lookup(flow_cls)
    provided: dict[str, Any] = {}
    for key, value in given.items():
        attr = lookup.get(key)
        if attr is None:
            known = ", ".join(p.name for p in params.values()) or "none"
            raise UsageError(f"{flow_cls.__name__} has no parameter `{key}` "
                             f"(its parameters: {known}).")
        provided[attr] = value
    values: dict[str, Any] = {}
    for attr, param in params.items():
        values[attr] = separated(_parameter_value(flow_cls, param, attr, provided),
                                 param.separator)
    return values


def parameter_env_var(param: Parameter) -> str:
    """The variable that gives a parameter's value when the command line does not (Metaflow's
    click convention: METAFLOW_RUN_ and the name in capitals, `-` as `_`)."""
    return "METAFLOW_RUN_" + param.name.upper().replace("-", "_")


def _parameter_value(flow_cls: type, param: Parameter, attr: str,
                     provided: dict[str, Any]) -> Any:
    raw = provided.get(attr)
    if attr not in provided:
        raw = os.environ.get(parameter_env_var(param))
    if attr in provided or raw is not None:
        try:
            if getattr(param, "multiple", False):  # `--name a --name b`, or "a b" from $VAR
                return param.convert_many(raw)
            return param.convert(raw)
        except ValueError as exc:
            source = "" if attr in provided else f" (from ${parameter_env_var(param)})"
            raise UsageError(f"{exc}{source}.") from None
    if param.required and not param.has_default:
        hint = f" ({param.help})" if param.help else ""
        raise UsageError(f"Missing required parameter --{param.name}{hint}. Pass "
                         f"`--{param.name} VALUE`.")
    try:
        return param.default_value(flow_cls.__name__)
    except ValueError as exc:  # an IncludeFile whose default file cannot be read
        raise UsageError(f"{exc} (the default of --{param.name}).") from None


# -- running ------------------------------------------------------------------

def execute(flow_cls: type, params: dict[str, Any], options: RunOptions,
            setup: RunSetup | None = None, run_id_file: str | None = None) -> RunOutcome:
    prepared = prepare(flow_cls)
    _attach_datastore(prepared.layout)
    context = _begin(flow_cls, prepared, setup, options)
    with _metaflow_errors(prepared.file):
        values = resolve_parameters(flow_cls, params)
    values = {**constant_values(flow_cls), **context.config_values, **values}
    _write_run_id(options, run_id_file)
    with _executor(options) as executor:
        outcome = Orchestrator(flow_cls, prepared.graph, values, prepared.layout, options,
                               executor=executor).run()
    return _publish(prepared.layout, outcome)


def _attach_datastore(layout: RunLayout, origin_run_id: str | None = None,
                      resuming: bool = False) -> None:
    """With an object-store root (`--datastore URL`, $FLOWDECK_DATASTORE), make the local
    root its working copy, once the store proved it takes writes; for a resume, fetch the
    runs (and the origin run's records) that are only in the object store."""
    url = os.environ.get(DATASTORE_ENV)
    if not is_store_url(url):
        return
    assert url is not None
    problem = store_url_problem(url)
    if problem:
        raise UsageError(f"The store {url} (--datastore or ${DATASTORE_ENV}): {problem}.")
    from flowdeck.store import objectstore
    try:
        objectstore.attach(layout.root, url)
        if resuming:
            cache = objectstore.ReadCache(layout.root, normal_url(url), "run")
            cache.fetch_runs(layout.flow)
            origin = origin_run_id or _latest_run_id(RunIndex(layout))
            if origin:
                cache.fetch_run(layout.flow, check_id("run id", origin))
    except InvalidId as exc:
        raise UsageError(f"--origin-run-id: {exc}") from None
    except objectstore.ObjectStoreError as exc:
        raise UsageError(str(exc)) from None


def _publish(layout: RunLayout, outcome: RunOutcome) -> RunOutcome:
    """Put the rest of a finished run into its object store (run.json last); if that
    fails, say so and fail the command: other machines would not see the run."""
    if datastore_of(layout.root) is None:
        return outcome
    from flowdeck.store import objectstore
    try:
        objectstore.publish_run(layout, outcome.run_id)
    except objectstore.ObjectStoreError as exc:
        print(f"flowdeck: run {outcome.run_id} ended ({outcome.status}) but {exc} Its "
              f"records are complete in {layout.run_dir(outcome.run_id)}.", file=sys.stderr)
        outcome.exit_code = outcome.exit_code or 1
    return outcome


def _begin(flow_cls: type, prepared: PreparedFlow, setup: RunSetup | None, options: RunOptions,
           origin_configs: dict[str, Any] | None = None) -> RunContext:
    """Configs, decorators, project and tags (runsetup.begin_run), as user errors."""
    setup = setup or RunSetup(quiet=options.quiet)
    with _metaflow_errors(prepared.file):
        context = begin_run(flow_cls, setup, str(prepared.layout.root), origin_configs)
    options.tags = context.user_tags
    options.system_tags = context.system_tags
    if not setup.quiet:
        for warning in prepared.diagnostics:  # lint warnings: the run goes ahead
            print(warning.format(), file=sys.stderr)
        print_notices(context.notices)
    return context


@contextmanager
def _metaflow_errors(file: str) -> Iterator[None]:
    """A MetaflowException while setting a run up is the user's to fix: a UsageError naming
    the flow's file (the message names the config, decorator or step)."""
    try:
        yield
    except MetaflowException as exc:
        raise UsageError(f"{file}: {exc}") from None


def _write_run_id(options: RunOptions, path: str | None) -> None:
    """`--run-id-file`: the run's id is chosen now and written before any task starts."""
    if path is None:
        return
    options.run_id = options.run_id or new_run_id()
    try:
        Path(path).write_text(options.run_id, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--run-id-file {path}: cannot write it ({exc.strerror or exc}). "
                         "Choose a writable path.") from None


def resume(flow_cls: type, steps: list[str], options: RunOptions,
           setup: RunSetup | None = None, run_id_file: str | None = None) -> RunOutcome:
    """Rerun from the failed (or named) steps of an earlier run, reusing its finished tasks."""
    prepared = prepare(flow_cls)
    graph, layout = prepared.graph, prepared.layout
    _attach_datastore(layout, options.origin_run_id, resuming=True)
    index = RunIndex(layout)
    origin_id = options.origin_run_id or _latest_run_id(index)
    if origin_id is None:
        raise UsageError(f"{flow_cls.__name__} has no earlier run to resume in "
                         f"{_store_named(layout)}. Run it first, or {ANOTHER_STORE}.")
    try:
        entry = index.read(check_id("run id", origin_id))
    except InvalidId as exc:
        raise UsageError(f"--origin-run-id: {exc}") from None
    if entry.record is None:
        if not layout.run_dir(origin_id).is_dir():  # a folder without run.json is damaged
            raise UsageError(f"There is no run {origin_id} of {flow_cls.__name__} in "
                             f"{_store_named(layout)}. Check --origin-run-id, or "
                             f"{ANOTHER_STORE}.")
        raise UsageError(f"Run {origin_id} cannot be resumed: {entry.damage}")
    if entry.status == RUNNING:
        if not _recorded_elsewhere(entry.record):
            raise UsageError(_still_running(flow_cls.__name__, entry.record))
        # Another host's run cannot be checked from here: it may have crashed there (or
        # in a container since replaced, whose name changed): refused, it could never be
        # resumed. Said instead, once, before anything runs.
        print(f"[flowdeck] {_still_running(flow_cls.__name__, entry.record).split('. ')[0]}; "
              "if it still runs there, its unfinished tasks now run a second time.",
              file=sys.stderr)
    unknown = [s for s in steps if s not in graph]
    if unknown:
        raise UsageError(f"{flow_cls.__name__} has no step {', '.join(unknown)}; its steps "
                         f"are {', '.join(graph.nodes)}.")
    records, _damaged = index.final_attempts(origin_id)  # damaged tasks are simply rerun
    # A named step reruns whole, with every step after it (Metaflow's `steps_to_rerun`).
    # Without one, as in Metaflow, every finished task whose inputs were all reused is
    # reused, wherever it is: the items of a failed foreach that finished, a loop's
    # finished rounds; only what failed, and what follows from it, runs again. A run whose
    # every task finished (a success, or one killed before it recorded its end) is then
    # reused whole, and the resume records its success.
    named = bool(steps)
    if not steps:
        steps = _unfinished_steps(graph, records)
    # A step whose code changed since the origin ran it reruns whole too, with what
    # follows: reused, its tasks were the old code's, and a resume after a fix reused
    # them (Metaflow does; following the engine's own "fix it, then resume" then ran the
    # old code to a success). Code outside the steps is not traced: said, and reused.
    changed = changed_steps(graph, records)
    steps = sorted(set(steps) | changed)
    # A @parallel gang that did not finish reruns whole (its nodes meet each other at run
    # time: one node alone would wait for peers that never start), as in Metaflow.
    gangs = {s for s in steps if graph[s].decorator("parallel") is not None}
    reusable = set() if named else set(graph.nodes) - gangs - changed
    # (said only when something is reused: a rerun `start` reruns every step after it)
    outside = bool(entry.record.outside_hash) and \
        entry.record.outside_hash != graph.outside_hash and graph.start_step not in steps
    origin = OriginRun(origin_id, records, graph.descendants(steps), reusable, changed, outside)
    values = _origin_parameters(BlobStore(layout.root), entry.record.param_refs, flow_cls)
    _begin(flow_cls, prepared, setup, options, origin_configs=values)
    _add_new_defaults(values, flow_cls)  # the origin's configs are read now
    _write_run_id(options, run_id_file)
    with _executor(options) as executor:
        outcome = Orchestrator(flow_cls, graph, values, layout, options, origin=origin,
                               executor=executor).run()
    return _publish(layout, outcome)


#: How to point a resume at the store its run is in (said where none was found).
ANOTHER_STORE = (f"name the store its runs are in: `--datastore s3://BUCKET/PREFIX` after "
                 f"`resume` (or ${DATASTORE_ENV}) for an object store, `--datastore-root "
                 f"DIR` before it (or ${ROOT_ENV}) for a folder")


def _store_named(layout: RunLayout) -> str:
    """The store a resume looked in, as the user named it: the object store's URL (not
    its working copy on this machine), else the folder."""
    mark = datastore_of(layout.root)
    return mark.url if mark is not None else str(layout.root)


@contextmanager
def _executor(options: RunOptions) -> Iterator[Executor | None]:
    """The executor the run asked for (None: the orchestrator's default, forked local
    workers), released when the run ends however it ends.

    Built before the run's folder exists: a scheduler that cannot be reached (or workers
    running another flowdeck) refuses the run with a UsageError and records nothing.
    """
    kind = (options.executor or os.environ.get(EXECUTOR_ENV, "").strip() or "local").lower()
    if kind == "local":
        if options.scheduler:
            raise UsageError("--scheduler is for tasks on Dask; add --executor dask.")
        yield None
        return
    if kind != "dask":
        raise UsageError(f"executor {kind!r} (--executor or ${EXECUTOR_ENV}): no such "
                         "executor; choose local or dask.")
    from flowdeck.engine.executors.dask import DaskExecutor
    executor = DaskExecutor(options.scheduler, options.max_workers)
    if not options.max_workers:
        options.max_workers = executor.default_max_workers()
    try:
        yield executor
    finally:
        executor.close(set())


def _recorded_elsewhere(record: RunRecord) -> bool:
    """Whether the run's record names another host than this one."""
    return bool(record.host) and record.host != hostname()


def _still_running(flow: str, record: RunRecord) -> str:
    """Why a run that is still running cannot be resumed (`effective_status`, the store's
    one liveness rule, says it runs): its finished tasks would be reused and the ones in
    flight run a second time beside it (found in review: both copies ran to the end)."""
    remote = _recorded_elsewhere(record)
    where = f"pid {record.pid}" + (f" on {record.host}, which this machine cannot check"
                                   if remote else "")
    kill = f"`kill {record.pid}`" + (f" on {record.host}" if remote else "")
    return (f"Run {record.run_id} of {flow} is still running ({where}). Resuming it now would "
            "run its unfinished tasks a second time beside it. Wait for it to end, or stop it "
            f"(Ctrl+C in its terminal, Stop in the window, or {kill}), then resume.")


def _latest_run_id(index: RunIndex) -> str | None:
    origin = index.resume_origin()
    return origin.run_id if origin else None


def changed_steps(graph: FlowGraph, records: list[AttemptRecord]) -> set[str]:
    """The steps whose code (`graph`, now) differs from what their finished tasks ran."""
    now = graph.step_hashes()
    return {r.step for r in records
            if r.done and r.source_hash and now.get(r.step, r.source_hash) != r.source_hash}


def _unfinished_steps(graph: FlowGraph, records: list[AttemptRecord]) -> list[str]:
    """The origin's failed steps that the flow still has, else its first step that never
    ran. A failed step renamed or removed since is no step to rerun (it crashed the
    resume): the renamed step never ran, and runs, with what follows it."""
    done = {r.step for r in records if r.done}
    bad = {r.step for r in records if not r.done and r.step in graph}
    never = [s for s in graph.topological() if s not in done and s not in bad]
    return sorted(bad) or never[:1]


def _origin_parameters(blobs: BlobStore, param_refs: dict[str, dict[str, Any]],
                       flow_cls: type) -> dict[str, Any]:
    values = {}
    for attr, ref in param_refs.items():
        values[attr] = blobs.get(BlobRef.from_dict(ref).sha)
    return values


def _add_new_defaults(values: dict[str, Any], flow_cls: type) -> None:
    """The defaults of parameters the origin did not record (added to the file since),
    once the run's configs are read: a `config_expr` default cannot be read before."""
    for attr, param in flow_parameters(flow_cls).items():
        if attr not in values:
            values[attr] = param.default_value(flow_cls.__name__)
