"""Build the launch of a run: engine, interpreter, environment, run id, events path.

The one place that turns "run this flow of this file with these arguments" into a
process to start, used by the window, by `flowdeck run` and by the artifact helper.
"""

from __future__ import annotations

import os
from pathlib import Path

from flowdeck.analysis.command_line import (
    FLOWDECK_TOP_OPTIONS,
    option_value,
    parameter_flags,
    top_options_first,
)
from flowdeck.analysis.flowfile import FlowInfo, analyze_file
from flowdeck.engines.base import Engine, LaunchSpec
from flowdeck.engines.interpreter import Interpreter, check_interpreter, detect_interpreter
from flowdeck.engines.local import FlowdeckEngine
from flowdeck.engines.metaflow import MetaflowEngine
from flowdeck.store.layout import (
    DATASTORE_ENV,
    ROOT_ENV,
    RUN_ID_ENV,
    InvalidId,
    RunLayout,
    check_id,
    default_root,
    is_store_url,
    new_run_id,
    store_url_problem,
    working_root,
)

ENGINES: dict[str, Engine] = {e.name: e for e in (FlowdeckEngine(), MetaflowEngine())}


class LaunchError(Exception):
    """A run that cannot start; the message says what to do."""


def engine_for(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise LaunchError(f"Unknown engine {name!r}; known: {', '.join(ENGINES)}.") from None


def installed_core() -> str:
    """The folder holding this `flowdeck` package, for a child's PYTHONPATH."""
    import flowdeck
    return str(Path(flowdeck.__file__).resolve().parent.parent)


def child_env(core_dir: str | None) -> dict[str, str]:
    """What every flow process gets: unbuffered UTF-8 output, and our core if it needs it.

    A double-clicked app has no PYTHONUNBUFFERED; without it a child's output would
    arrive in 8 kB blocks, and a non-UTF-8 locale would garble it.
    """
    env = {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
    if core_dir:
        current = os.environ.get("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [core_dir, current]))
    return env


def resolve_interpreter(file: str, configured: str | None = None) -> Interpreter:
    return detect_interpreter(os.path.dirname(os.path.abspath(file)), configured)


def store_environment(file: str, store: str | None) -> tuple[Path, dict[str, str]]:
    """Where a run of `file` keeps what it writes locally (its events among them), and the
    variables that make the flow process choose that store.

    `store` is None or "" (the flow's own store, `default_root`), a folder (the run's
    $FLOWDECK_HOME), or an object-store URL (its $FLOWDECK_DATASTORE: the run works in
    that store's working copy inside the local store). A launcher must know the root to
    follow the run's events, so the choice travels in the environment the root is
    computed from, never only as a `--datastore` argument the launcher cannot see."""
    if not store:
        return default_root(file), {}
    if not is_store_url(store):
        folder = Path(store).expanduser().resolve()
        return folder, {ROOT_ENV: str(folder), DATASTORE_ENV: ""}
    local = default_root(file)
    if is_store_url(os.environ.get(DATASTORE_ENV)):
        local = local.parent.parent  # default_root gave our own URL's working copy in it
    return working_root(local, store), {DATASTORE_ENV: store}


def datastore_arg(args: list[str]) -> str | None:
    """The object-store URL of a `--datastore URL` in a Flowdeck command line, if any: the
    flow process reads it itself, and its launcher must follow the run there too."""
    value = option_value(args, "--datastore")
    return value if value is not None and is_store_url(value) else None


def build_launch(file: str, flow: str, engine: str, args: list[str], *,
                 interpreter: Interpreter | None = None, run_id: str | None = None,
                 project_root: str | None = None,
                 core_dir: str | None = None, imports: str | None = None,
                 store: str | None = None, cwd: str | None = None,
                 info: FlowInfo | None = None) -> LaunchSpec:
    """The launch of `flow` in `file` with the flow command line `args` (`run ...`,
    `resume ...`) on `engine`. `imports` is the engine the file is written for
    (discovery's `FlowInfo.engine`; read from the file when not given): Flowdeck's
    engine runs a Metaflow file unchanged through its alias entry. `store` (a folder or
    an object-store URL; see `store_environment`; on Flowdeck's engine a `--datastore URL`
    in `args` when not given) is where the run keeps its records. `cwd`: where the run
    starts (a terminal's current folder, as `python FILE` there); by default the engine's
    choice for the file (the window's). `info`: the caller's analysis of the flow (the
    catalog's, made off the GUI thread); read from the file when not given. Raises
    LaunchError when the interpreter cannot run it, or the file does not start the flow."""
    file = os.path.abspath(file)
    chosen = engine_for(engine)
    info = info or analyze_file(file).flow(flow)
    if info is not None and info.start_problem:
        raise LaunchError(info.start_problem)
    imports = imports or (info.engine if info is not None else None) or chosen.name
    if chosen.name == "metaflow" and imports != "metaflow":
        raise LaunchError(f"{file}: {flow} imports {imports}, not metaflow, so Metaflow's "
                          "engine cannot run it. Run it on Flowdeck's engine "
                          f"(`flowdeck run --engine flowdeck {file}`).")
    python = interpreter or resolve_interpreter(file)
    check = check_interpreter(python.path)
    if not check.works:
        raise LaunchError(check.error)
    problem = chosen.missing(check, python.path, flow)
    if problem:
        raise LaunchError(problem)
    run_id = _checked_ids(file, flow, info, run_id or new_run_id())
    if store is None and chosen.name == "flowdeck":
        store = datastore_arg(args)
    problem = store_url_problem(store) if store and is_store_url(store) else None
    if problem:  # before its working copy is made for it
        raise LaunchError(f"The store {store}: {problem}.")
    root, store_env = store_environment(file, store)
    layout = RunLayout(root, flow)
    env = child_env((core_dir or installed_core()) if chosen.needs_core_on_path(check) else None)
    env.update(store_env)
    env[RUN_ID_ENV] = run_id
    if chosen.name == "flowdeck":  # the script takes its own options before the command
        names = [p.name for p in info.parameters] if info is not None else []
        args = top_options_first(args, parameter_flags(names), FLOWDECK_TOP_OPTIONS)
    return LaunchSpec(program=python.path, args=chosen.run_args(file, args, imports),
                      cwd=cwd or chosen.working_dir(file, project_root), env=env,
                      engine=chosen.name, flow=flow,
                      file=file, run_id=run_id, root=str(layout.root),
                      events_path=str(layout.events(run_id)), stop_signal=chosen.stop_signal,
                      stop_grace_s=chosen.stop_grace_s)


def _checked_ids(file: str, flow: str, info: FlowInfo | None, run_id: str) -> str:
    """`run_id`, once it and the flow's name are ids the store can name folders by: a
    flow the store cannot hold ended `flowdeck run` in a traceback (InvalidId from the
    run's paths); now a LaunchError at the class's line says what to rename."""
    try:
        check_id("flow name", flow)
    except InvalidId as exc:
        where = f"{file}:{info.line}" if info is not None else file
        raise LaunchError(f"{where}: {exc} Rename the class {flow}, which names the folder "
                          "its runs are stored in.") from None
    try:
        return check_id("run id", run_id)
    except InvalidId as exc:
        raise LaunchError(str(exc)) from None


#: The window's helper processes: the artifact helper (either engine's runs), and the one
#: that copies a Metaflow-bridge task's cards to where the Cards tab reads them.
ARTIFACT_HELPER = "flowdeck.engines.inspect_task"
METAFLOW_CARDS_HELPER = "flowdeck.engines.metaflow_cards"


def inspect_argv(interpreter: str, root: str, flow: str, run_id: str, step: str,
                 task_id: str, module: str = ARTIFACT_HELPER) -> list[str]:
    """A task helper's command, in the flow's interpreter (see inspect_task)."""
    return [interpreter, "-m", module, root, flow, run_id, step, task_id]
