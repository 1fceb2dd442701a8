"""The flow script's options that go before its command (`python flow.py --environment=x
run`), and how a command line that has them after the command is put right.

Metaflow accepts its own top-level options only before the command; the window's run
options and `flowdeck run` collect everything after it. Written once here for both
engines: the Metaflow bridge moves Metaflow's options ahead of the command, the launch of
Flowdeck's engine moves Flowdeck's, and the script's own command line
(`engine.script_cli`) parses and advises with the same table. No imports: the window's
launcher reads it without loading an engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: Metaflow's options of the flow script itself (`start` in metaflow/cli.py), each with
#: how many values follow it when not written `--x=v`.
METAFLOW_TOP_OPTIONS: dict[str, int] = {
    "--metadata": 1, "--environment": 1, "--datastore": 1, "--datastore-root": 1,
    "--package-suffixes": 1, "--with": 1, "--event-logger": 1, "--monitor": 1,
    "--local-config-file": 1, "--mode": 1, "--config": 2, "--config-value": 2,
    "--branch": 1,  # @project's flow option
    "--quiet": 0, "--not-quiet": 0, "--pylint": 0, "--no-pylint": 0,
    "--force-rebuild-environments": 0, "--no-force-rebuild-environments": 0,
    "--production": 0,  # @project's flow option
}

#: Those Flowdeck's own script takes (the rest are refused by its command line).
FLOWDECK_TOP_OPTIONS: dict[str, int] = {
    name: METAFLOW_TOP_OPTIONS[name] for name in (
        "--quiet", "--metadata", "--datastore", "--datastore-root", "--environment",
        "--event-logger", "--monitor", "--no-pylint", "--pylint", "--with", "--config",
        "--config-value", "--branch", "--production", "--package-suffixes", "--not-quiet")}


def parameter_flags(names: Iterable[str]) -> frozenset[str]:
    """The options a flow's parameters (by name) take, as written and with `-` for `_`
    (Metaflow's spelling): the flow's own, which a top-level option of the same name
    (`--branch`) must not take from the command."""
    return frozenset(f"--{spelling}" for name in names
                     for spelling in (name, name.replace("_", "-")))


def split_top_level(args: list[str], parameters: set[str] | frozenset[str] = frozenset(),
                    options: dict[str, int] | None = None) -> tuple[list[str], list[str]]:
    """(the top-level options among `args`, the rest), order kept. `options`: which
    (Metaflow's by default). `parameters` are the flow's own options (`--branch` of a
    flow with a Parameter named branch is the parameter, not @project's option), which
    stay with the command."""
    table = METAFLOW_TOP_OPTIONS if options is None else options
    top: list[str] = []
    rest: list[str] = []
    at = 0
    while at < len(args):
        name = args[at].split("=", 1)[0]
        if name in table and name not in parameters:
            values = 0 if "=" in args[at] else table[name]
            top += args[at:at + 1 + values]
            at += 1 + values
        else:
            rest.append(args[at])
            at += 1
    return top, rest


def top_options_first(args: list[str], parameters: set[str] | frozenset[str] = frozenset(),
                      options: dict[str, int] | None = None) -> list[str]:
    """`args` (a command and its options: `run --max-workers 2 --environment=x`) with the
    top-level options moved before the command, as the script's command line takes them."""
    if not args or args[0].startswith("-"):
        return list(args)
    top, rest = split_top_level(args[1:], parameters, options)
    return [*top, args[0], *rest]


def option_value(args: Sequence[str], flag: str) -> str | None:
    """The value of the last `flag VALUE` (or `flag=VALUE`) in a command line, as argparse
    and click take a repeated option; "" for a flag given last without its value; None
    when it is not given."""
    value = None
    for i, arg in enumerate(args):
        name, eq, after = arg.partition("=")
        if name == flag:
            value = after if eq else (args[i + 1] if i + 1 < len(args) else "")
    return value


def without_options(args: Sequence[str], flags: Iterable[str]) -> list[str]:
    """`args` less each of `flags` with its value (`--x v` or `--x=v`)."""
    dropped = frozenset(flags)
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name, eq, _ = arg.partition("=")
        if name in dropped:
            skip = not eq
            continue
        kept.append(arg)
    return kept
