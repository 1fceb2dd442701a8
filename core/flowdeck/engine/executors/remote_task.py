"""One task attempt in a process of its own on a remote worker (the child side of `dask`).

A Dask worker is a long-lived, multi-threaded process shared by many tasks, so an attempt
never runs in it: the worker keeps a zygote (`task_zygote`, a single-threaded process that
loaded the run's flow class once) that forks a fresh child per attempt. The child leads
its own process group, dies with the zygote and with the worker, writes its output to the
pipes it was given, loads the cloudpickled `TaskRequest` and the run's settled state, then
runs `task.execute_task` exactly as a forked local worker does.

This module imports neither dask nor distributed: the zygote imports it, and a child's
start-up costs a fork, not an interpreter, its imports or the flow class's.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import cloudpickle

from flowdeck.analysis.diagnostics import UsageError
from flowdeck.authoring import runsetup
from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engine.task import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    WORKER_ENV,
    TaskRequest,
    execute_task,
    finish_worker_process,
    keep_tracked_script_classes,
    prepare_worker_process,
)
from flowdeck.engines import processes
from flowdeck.store.layout import RUN_ID_ENV, datastore_of

#: The child could not load its task: a module the flow needs is missing on the worker.
EXIT_MISSING_MODULE = 69  # EX_UNAVAILABLE
#: The child could not load its task for another reason (a damaged payload, a bad pickle).
EXIT_LOAD_FAILED = 70  # EX_SOFTWARE


@dataclass
class Payload:
    """What the orchestrator ships per attempt besides the flow class (which travels once
    per run and worker, see `pack_class`): the request without its class and the run
    state `begin_run` settled."""

    request: bytes
    run_state: dict[str, Any]
    #: the orchestrator's working directory: a task runs there when the worker has it (a
    #: LocalCluster, a shared file system), as a forked local task does
    cwd: str = ""


def pack(request: TaskRequest) -> bytes:
    """The bytes a worker needs to run `request`, its flow class apart."""
    import dataclasses
    bare = dataclasses.replace(request, flow_cls=type(None))
    return cloudpickle.dumps(Payload(cloudpickle.dumps(bare), runsetup.export_run_state(),
                                     os.getcwd()))


def pack_class(flow_cls: type) -> bytes:
    """The flow class pickled by value (with the project modules registered for it); a
    UsageError naming the module-level objects that cannot travel with it."""
    try:
        return cloudpickle.dumps(flow_cls)
    except Exception as exc:  # noqa: BLE001 (PicklingError, TypeError: any object's own refusal)
        raise UsageError(_unpicklable_class(flow_cls, exc)) from None


def _unpicklable_class(flow_cls: type, exc: Exception) -> str:
    """Which globals of the flow's module, used by its steps (or by the module's functions
    they call), cannot be pickled, and where they are made: what the user has to change."""
    module = sys.modules.get(flow_cls.__module__)
    path = getattr(module, "__file__", None) or "the flow file"
    culprits = _unpicklable_globals(module, _names_used(vars(flow_cls).values()), {id(flow_cls)})
    found = [f"`{name}` (line {_assigned_at(path, name)})" for name in culprits]
    what = ("the module-level " + ", ".join(found) + (" it uses" if len(found) == 1
            else " they use")) if found else "something its steps use"
    return (f"{path}: the flow class cannot be sent to the Dask workers: {what} cannot be "
            f"pickled ({exc}). With --executor dask the class travels to each worker with "
            "the module-level objects its steps use; make an open file, a lock or a "
            "connection inside the step that needs it (or run this flow on this machine, "
            "without --executor dask).")


def _unpicklable_globals(module: Any, names: set[str], seen: set[int]) -> list[str]:
    """The names among `names` whose global values cannot be pickled; for a function of
    the module that cannot, the globals it uses that cannot (the function itself when
    none of them is to blame). `seen`: the ids of values looked at (cycles end)."""
    found: list[str] = []
    values = vars(module) if module is not None else {}
    for name in sorted(names & values.keys()):
        value = values[name]
        if id(value) in seen or isinstance(value, type(sys)):
            continue
        seen.add(id(value))
        try:
            cloudpickle.dumps(value)
            continue
        except Exception:  # noqa: BLE001 (the same refusal, object by object)
            pass
        inner = (_unpicklable_globals(module, _names_used([value]), seen)
                 if getattr(value, "__module__", None) == module.__name__ else [])
        found.extend(inner or [name])
    return found


def _names_used(functions: Any) -> set[str]:
    """The global names the functions among `functions` (and those nested in them) load."""
    names: set[str] = set()
    codes = [v.__code__ for v in functions if hasattr(v, "__code__")]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return names


def _assigned_at(path: str, name: str) -> str:
    """The line of the first module-level assignment to `name` in `path` ("?" if none)."""
    import ast
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return "?"
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and \
                node.name == name:
            return str(node.lineno)
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign | ast.AugAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return str(node.lineno)
    return "?"


@dataclass(frozen=True)
class LoadFailure:
    """Why a worker cannot load a flow class: the exit code and message every attempt of
    it then reports."""

    code: int
    message: str


def load_flow_class(flow_class: bytes, files: dict[str, str], worker: str) -> type | LoadFailure:
    """The flow class from `pack_class`, its functions given their source files back
    (`files`: module name -> source file of the code shipped by value, which cloudpickle
    drops; tracebacks must name the user's file and line)."""
    try:
        flow_cls: type = cloudpickle.loads(flow_class)
    except ModuleNotFoundError as exc:
        return LoadFailure(EXIT_MISSING_MODULE,
                           missing_module_message(worker, exc.name or str(exc)))
    except Exception as exc:  # noqa: BLE001 (a damaged payload, a bad pickle: said)
        return LoadFailure(EXIT_LOAD_FAILED, load_failed_message(worker, exc))
    _restore_file_names(flow_cls, files)
    keep_tracked_script_classes()  # a reused value's old methods never replace these
    return flow_cls


def load_failed_message(worker: str, exc: BaseException) -> str:
    return (f"Worker {worker} could not load the task: {type(exc).__name__}: {exc}. Check "
            "that the workers run the same Python version as the orchestrator.")


def missing_module_message(worker: str, name: str) -> str:
    """What a task says when the worker lacks a module its flow imports."""
    top = name.split(".")[0]
    return (f"Worker {worker} cannot import module `{name}`, which the flow needs. Install it "
            f"in the workers' Python (e.g. pip install {top}), or, if `{top}` is a file of "
            "your project, import it at the top of the flow file (modules beside the flow "
            "file are shipped with it).")


class WorkerImportHint:
    """Last on a task's `sys.meta_path` on a worker: finds nothing, but a step's import of
    a module the worker lacks is said with the fix (`task._import_refusal`), as a module
    the flow file imports at its top is: a file beside the flow file travels to the
    workers only when the flow file imports it (a step's `import helper` worked on this
    machine and on a LocalCluster, and on a cluster elsewhere said only "No module named
    'helper'")."""

    def __init__(self, worker: str) -> None:
        self.worker = worker

    def find_spec(self, *_args: Any) -> None:  # noqa: D102 (the finder protocol)
        return None

    def import_refusal(self, exc: ImportError) -> str | None:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return step_import_message(self.worker, exc.name)
        return None


def step_import_message(worker: str, name: str) -> str:
    """A step's own import the worker cannot serve. Unlike the flow file's imports, which
    this machine resolved, the name may be misspelt: no `pip install <name>` is offered."""
    top = name.split(".")[0]
    return (f"Worker {worker} cannot import module `{name}` (No module named '{name}'). If "
            f"`{top}` is a file of your project, import it at the top of the flow file: "
            "files beside the flow file travel to the workers only then. If it is a "
            "package, check its name, and install it in the workers' Python.")


@dataclass(frozen=True)
class WorkerPaths:
    """Where an attempt writes its store folder and record on this worker."""

    root: str
    attempt_json: str
    #: True when they are not the orchestrator's (a worker on a machine that does not
    #: share its folder): the worker then ships the task folder's files (the record, the
    #: cards) back with the attempt's end.
    relocated: bool


def worker_paths(root: str, attempt_json: str, datastore: str | None) -> WorkerPaths | None:
    """The attempt's paths on this worker, or None when it cannot write the store here.

    With an object store, blobs and records go to the store itself and the local folder
    is only the orchestrator's working copy. A worker that does not see that working copy
    (its `datastore.json` naming the same store) is on another machine: it writes into a
    scratch folder of its own with the same layout (so the object keys are the same) and
    returns the record and cards, which the orchestrator puts into its working copy. A
    plain folder store must be the orchestrator's own folder (a LocalCluster, a shared
    file system).
    """
    if datastore is None:
        return WorkerPaths(root, attempt_json, False) if os.path.isdir(root) else None
    mark = datastore_of(root)
    if mark is not None and mark.url == datastore:
        return WorkerPaths(root, attempt_json, False)
    import hashlib
    import tempfile
    scratch = os.path.join(tempfile.gettempdir(), "flowdeck-worker",
                           hashlib.sha256(root.encode()).hexdigest()[:16])
    return WorkerPaths(scratch, os.path.join(scratch, os.path.relpath(attempt_json, root)),
                       True)


def store_not_here_message(worker: str, root: str) -> str:
    """What a task says when its worker cannot reach a folder store."""
    return (f"Worker {worker} cannot reach the store folder {root}: it is on another "
            "machine that does not share this folder. Run the workers where the folder "
            "is (a shared file system mounted at the same path), or give the flow an "
            "object store both reach: --datastore s3://bucket/prefix.")


def shipped_files(paths: WorkerPaths) -> dict[str, bytes]:
    """What a relocated attempt wrote into its task folder (its record, its cards), by path
    within that folder, taken out of the worker's scratch folder; {} when not relocated.
    Files whose names start with a dot (an unfinished atomic write) are left out."""
    if not paths.relocated:
        return {}
    import shutil
    task_dir = os.path.dirname(paths.attempt_json)
    files: dict[str, bytes] = {}
    for folder, _, names in os.walk(task_dir):
        for name in names:
            if name.startswith("."):
                continue
            full = os.path.join(folder, name)
            try:
                with open(full, "rb") as handle:
                    files[os.path.relpath(full, task_dir)] = handle.read()
            except OSError:
                continue
    shutil.rmtree(task_dir, ignore_errors=True)
    return files


def child_main(flow_cls: type, payload: bytes, out_fd: int, err_fd: int, report_fd: int,
               worker: str, worker_pid: int = 0, paths: WorkerPaths | None = None) -> None:
    """The child's whole life, in a process just forked by the zygote: set up, load, run
    the attempt, exit with its code.

    `out_fd`/`err_fd` become fds 1 and 2; `report_fd` carries one line back to the worker
    when the task cannot even be loaded (the orchestrator shows it as the attempt's
    error). `paths` (from `worker_paths`) say where this worker writes the attempt's files.
    """
    code = EXIT_FAILED
    try:
        try:
            os.setpgid(0, 0)  # the worker kills the attempt as a group
        except OSError:
            pass
        processes.die_with_parent(os.getppid())
        if worker_pid:
            _die_with_worker(worker_pid)
        processes.set_child_subreaper(True)  # the step's orphans stay in reach
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        prepare_worker_process()
        request = _load(flow_cls, payload, report_fd, worker)
        os.close(report_fd)
        if paths is not None and paths.relocated:
            request.root, request.attempt_json = Path(paths.root), paths.attempt_json
        os.environ[RUN_ID_ENV] = request.run_id
        os.environ[WORKER_ENV] = worker  # a store error says it happened on this worker
        sys.meta_path.append(WorkerImportHint(worker))
        code = execute_task(request)
        finish_worker_process(request, code)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_FAILED
    except KeyboardInterrupt:  # a stop before the step ran: as a forked local task, quietly
        code = EXIT_CANCELLED
    except BaseException:  # the engine itself failed here: say so on the task's stderr
        traceback.print_exc()
        code = EXIT_FAILED
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _die_with_worker(worker_pid: int) -> None:
    """End this attempt (its whole process group) the moment its Dask worker dies.

    The child's parent is the worker's fork server, which may outlive the worker for a
    while, so the parent-death signal alone is not enough: a task of a SIGKILLed worker
    ran on and wrote its record after the orchestrator had given the attempt up. A
    daemon thread waits on a pidfd of the worker (polls where there is none).
    """
    import threading

    def watch() -> None:
        opener = getattr(os, "pidfd_open", None)
        try:
            fd = opener(worker_pid) if opener is not None else None
        except OSError:  # already gone
            fd = None
            _end_group()
        if fd is not None:
            import select
            select.select([fd], [], [])
        else:
            import time
            while processes.is_live(worker_pid):
                time.sleep(0.2)
        _end_group()

    threading.Thread(target=watch, name="flowdeck-worker-watch", daemon=True).start()


def _end_group() -> None:
    try:
        os.killpg(0, signal.SIGKILL)  # to this attempt's group, this process included
    finally:
        os._exit(EXIT_FAILED)


def drop_fork_server_fds() -> None:
    """Close what multiprocessing hands every fork server child (the zygote is one): the
    write end of the server's own "clients alive" pipe and the resource tracker's pipe.

    Held by the zygote and so by every attempt, they keep the fork server (and the
    tracker) alive after the worker died, and so the attempts too (their parent-death
    signal never comes): a task of a SIGKILLed worker ran on, orphaned. Without them, the
    server sees EOF when the worker dies and exits, and the kernel kills its children.
    """
    from multiprocessing import forkserver, resource_tracker
    for holder, name in ((getattr(forkserver, "_forkserver", None), "_forkserver_alive_fd"),
                         (getattr(resource_tracker, "_resource_tracker", None), "_fd")):
        fd = getattr(holder, name, None)
        if holder is None or not isinstance(fd, int):
            continue
        try:
            os.close(fd)
        except OSError:
            pass
        setattr(holder, name, None)


def _load(flow_cls: type, payload: bytes, report_fd: int, worker: str) -> TaskRequest:
    """The attempt's request, with its flow class and the run's state in place."""
    try:
        data: Payload = cloudpickle.loads(payload)
        request: TaskRequest = cloudpickle.loads(data.request)
    except ModuleNotFoundError as exc:  # a parameter's or artifact reference's type
        _give_up(report_fd, missing_module_message(worker, exc.name or str(exc)),
                 EXIT_MISSING_MODULE)
    except Exception as exc:
        _give_up(report_fd, load_failed_message(worker, exc), EXIT_LOAD_FAILED)
    if data.cwd:
        try:
            os.chdir(data.cwd)
        except OSError:
            pass  # another machine: the worker's own folder
    request.flow_cls = flow_cls
    runsetup.adopt_run_state(data.run_state)
    return request


def _restore_file_names(flow_cls: type, files: dict[str, str]) -> None:
    """Give the flow's functions (steps, their decorators' wrappers, the module functions
    they call) their source file back, so a traceback names the file and line."""
    default = files.get(flow_cls.__module__)
    seen: set[int] = set()

    def fix(func: Any, depth: int) -> None:
        code = getattr(func, "__code__", None)
        if code is None or id(func) in seen:
            return
        seen.add(id(func))
        file = files.get(getattr(func, "__module__", None) or "", default)
        if file and code.co_filename == "<dynamic-code>":
            try:
                func.__code__ = _renamed(code, file)
            except (AttributeError, TypeError, ValueError):
                pass
        fix(getattr(func, "__wrapped__", None), depth)
        for cell in getattr(func, "__closure__", None) or ():
            try:
                fix(cell.cell_contents, depth)
            except ValueError:  # an empty cell
                pass
        if depth < 1:
            for value in list((getattr(func, "__globals__", None) or {}).values()):
                fix(value, depth + 1)
                if isinstance(value, type) and value.__module__ in files:  # a script class
                    for member in list(vars(value).values()):
                        fix(getattr(member, "__func__", member), depth + 1)

    for value in list(vars(flow_cls).values()):
        for inner in (value, getattr(value, "__func__", None), getattr(value, "fget", None)):
            fix(inner, 0)


def _renamed(code: Any, file: str) -> Any:
    consts = tuple(_renamed(c, file) if hasattr(c, "co_filename") else c
                   for c in code.co_consts)
    return code.replace(co_filename=file, co_consts=consts)


def _give_up(report_fd: int, message: str, code: int) -> Any:
    print(message, file=sys.stderr, flush=True)
    try:
        os.write(report_fd, message.encode("utf-8", "replace"))
    except OSError:
        pass
    raise SystemExit(code)
