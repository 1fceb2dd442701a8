"""A corpus of bad (and strange) flow files, each with its expected verdict.

Every case is written to a folder of its own and run with `flowdeck run FILE`
(as `python -m flowdeck.cli.main run`), then read back with the client
(`flowdeck.Flow(...).latest_run`). Its verdict is one of:

- succeeded: exit 0 and the run reads back succeeded;
- failed: a non-zero exit, the run reads back failed, and the message names the
  problem (a substring of the output and of the run's or a task's error);
- lint: a non-zero exit, the message on stderr, and no run made;
- error: the file cannot run at all (it does not import, defines no flow...): a
  non-zero exit and the message.

And for every case: no traceback with Flowdeck's own frames, and no traceback at all
where the user's code did not raise (user mistakes are explained, not crashed on);
nothing the case started outlives it.

    python3 reliability/bad_inputs.py [--quick] [--write DIR]
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import Tally, Workdir, child_env, kill_quietly, marked, our_frames, parse_args, run

ENV_MARK = "FLOWDECK_CAMPAIGN_CASE"


def flow(start: str, *, imports: str = "", module: str = "", deco: str = "",
         end: str = "pass", params: str = "", steps: str = "", after_start: str = "end") -> str:
    """A flow file `BadFlow` whose start step runs `start` and then goes to `after_start`."""
    return f'''import os
import sys
import time
{imports}
from flowdeck import FlowSpec, Parameter, catch, resources, retry, step, timeout
{module}


class BadFlow(FlowSpec):
{textwrap.indent(params, "    ")}
{textwrap.indent(deco, "    ")}
    @step
    def start(self):
{textwrap.indent(start, "        ")}
        self.next(self.{after_start})
{textwrap.indent(steps, "    ")}
    @step
    def end(self):
{textwrap.indent(end, "        ")}


if __name__ == "__main__":
    BadFlow()
'''


@dataclass
class Case:
    name: str
    source: str | bytes
    expect: str  # succeeded | failed | lint | error
    message: str = ""  # a substring of what Flowdeck says (case-insensitive)
    args: tuple[str, ...] = ()
    #: The user's code raised (or was stopped, by its @timeout or memory limit, at a line of
    #: its own): a traceback of the user's frames is fine, never one of Flowdeck's.
    traceback_ok: bool = False
    timeout: float = 120.0
    check: Callable[[Path], list[str]] | None = None  # more checks, given the case's folder

    def with_deco(self, deco: str) -> "Case":
        """The same case with a decorator on its start step (above @step)."""
        source = self.source if isinstance(self.source, str) else self.source.decode()
        self.source = source.replace("    @step\n    def start",
                                     f"    {deco}\n    @step\n    def start")
        return self


def linear(count: int) -> str:
    """A flow of `count` linear steps and three megabytes of comments."""
    steps = "".join(f'''
@step
def s{i}(self):
    self.i = {i}
    self.next(self.s{i + 1})
''' for i in range(count - 1))
    steps += f'''
@step
def s{count - 1}(self):
    self.next(self.end)
'''
    comments = ("# " + "padding " * 12 + "\n") * 30_000
    return flow("self.i = -1", steps=steps, after_start="s0", module=comments)


UNPICKLE_MODULE = '''

def rebuild(marker):
    with open(marker + "-" + str(os.getpid()), "w"):
        pass
    return 42


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (rebuild, (self.marker,))


def refuse():
    raise ValueError("cannot rebuild this value")


class Refuses:
    def __reduce__(self):
        return (refuse, ())


class NoPickling:
    def __reduce__(self):
        raise RuntimeError("this object refuses pickling")


class BadStr(Exception):
    def __str__(self):
        raise RuntimeError("__str__ exploded")
'''

SPLIT_STEPS = '''
@step
def a(self):
    self.x = 1
    self.next(self.join)

@step
def b(self):
    self.x = 2
    self.next(self.join)

@step
def join(self, inputs):
    self.merge_artifacts(inputs)
    self.next(self.end)
'''

FOREACH_STEPS = '''
@step
def each(self):
    self.next(self.join)

@step
def join(self, inputs):
    self.next(self.end)
'''


def only_one_rebuild(folder: Path) -> list[str]:
    """The artifact's reconstructor ran once, in the end step's task (never in Flowdeck)."""
    markers = list(folder.glob("rebuilt-*"))
    return [] if len(markers) == 1 else [f"the reconstructor ran {len(markers)} times"]


def corpus() -> list[Case]:
    """At least 30 cases: file problems, output, exits, exceptions, artifacts, processes."""
    # Python compiles at most 20 statically nested loops; the parser (and lint) accept more.
    deep_blocks = "".join("    " * i + "for _ in [1]:\n" for i in range(25)) + "    " * 25 + \
        "pass\n"
    return [
        # -- the file itself
        Case("huge_file", linear(300), "succeeded"),
        Case("deep_parentheses", flow("x = " + "(" * 300 + "1" + ")" * 300), "lint",
             "parenthes"),
        Case("deep_blocks", flow(deep_blocks), "error", "nested blocks"),
        Case("long_expression", flow("x = 1" + " + 1" * 100_000), "error", "recursion"),
        Case("non_utf8", flow("self.s = 'caf\xe9'").encode("latin-1"), "lint", "utf-8"),
        Case("nul_bytes", flow("x = 1  # \x00 nul"), "lint", "NUL byte"),
        Case("bom_crlf", ("\ufeff" + flow("self.x = 1")).replace("\n", "\r\n"), "succeeded"),
        Case("latin1_declared", ("# -*- coding: latin-1 -*-\n" +
                                 flow("self.s = 'caf\xe9'")).encode("latin-1"), "succeeded"),
        Case("syntax_error", flow("x = (1,"), "lint", "never closed"),
        Case("missing_next", flow("pass").replace("self.next(self.end)", "pass"), "lint",
             "self.next"),
        Case("no_flow", "x = 1\n", "error", "no flow"),
        Case("empty_file", "", "error", "no flow"),
        Case("import_error", flow("pass", imports="import not_a_module_xyz"), "error",
             "not_a_module_xyz", traceback_ok=True),
        Case("module_exits", flow("pass", module="sys.exit(3)"), "error", "3"),
        Case("bad_parameter", flow("pass", params='n = Parameter("n", type=int, default=1)'),
             "error", "n", args=("--n", "abc")),
        # -- output
        Case("huge_output", flow("line = 'x' * 999\nfor _ in range(30_000):\n    print(line)"),
             "succeeded"),
        Case("binary_output", flow("sys.stdout.buffer.write(os.urandom(1 << 20))\n"
                                   "sys.stderr.buffer.write(os.urandom(1 << 16))"), "succeeded"),
        Case("endless_line", flow("sys.stdout.write('y' * 10_000_000)"), "succeeded"),
        Case("closed_stdio", flow("os.close(1)\nos.close(2)\nself.x = 1"), "succeeded"),
        Case("lone_surrogate", flow("print('\\udcff')"), "succeeded"),
        # -- never ending, exits and signals
        Case("busy_forever", flow("while True:\n    pass"), "failed", "timed out",
             traceback_ok=True, timeout=60).with_deco("@timeout(seconds=2)"),
        Case("sleep_forever", flow("time.sleep(3600)"), "failed", "timed out",
             traceback_ok=True, timeout=60).with_deco("@timeout(seconds=2)"),
        Case("os_exit", flow("os._exit(3)"), "failed", "code 3"),
        Case("os_exit_zero", flow("os._exit(0)"), "failed", "code 0"),
        Case("segfault", flow("import ctypes\nctypes.string_at(0)"), "failed", "SIGSEGV"),
        Case("sigterm_self", flow("import signal\nos.kill(os.getpid(), signal.SIGTERM)\n"
                                  "time.sleep(5)"), "failed", "SIGTERM"),
        Case("stdin_read", flow("input()"), "failed", "EOFError", traceback_ok=True),
        # -- exceptions
        Case("value_error", flow("raise ValueError('boom in start')"), "failed",
             "boom in start", traceback_ok=True),
        Case("keyboard_interrupt", flow("raise KeyboardInterrupt"), "failed",
             "KeyboardInterrupt", traceback_ok=True),
        Case("system_exit_0", flow("raise SystemExit(0)"), "failed", "SystemExit",
             traceback_ok=True),
        Case("sys_exit_1", flow("sys.exit(1)"), "failed", "SystemExit", traceback_ok=True),
        Case("generator_exit", flow("raise GeneratorExit"), "failed", "GeneratorExit",
             traceback_ok=True),
        Case("recursion", flow("def f(n):\n    return f(n + 1)\nf(0)"), "failed",
             "RecursionError", traceback_ok=True),
        Case("unprintable_exception", flow("raise BadStr()", module=UNPICKLE_MODULE), "failed",
             "BadStr", traceback_ok=True),
        Case("huge_exception", flow("raise ValueError('m' * 5_000_000)"), "failed",
             "ValueError", traceback_ok=True),
        # -- artifacts
        Case("unpicklable_lock", flow("import threading\nself.lock = threading.Lock()"),
             "failed", "lock"),
        Case("pickling_raises", flow("self.thing = NoPickling()", module=UNPICKLE_MODULE),
             "failed", "refuses pickling", traceback_ok=True),
        Case("unpickle_runs_code", flow("self.thing = RunsCode(os.path.abspath('rebuilt'))",
                                        module=UNPICKLE_MODULE, end="assert self.thing == 42"),
             "succeeded", check=only_one_rebuild),
        Case("unpickle_raises", flow("self.thing = Refuses()", module=UNPICKLE_MODULE,
                                     end="print(self.thing)"), "failed", "cannot rebuild",
             traceback_ok=True),
        Case("deep_artifact", flow("x = []\nfor _ in range(200_000):\n    x = [x]\nself.deep = x"),
             "failed", "deep"),
        Case("two_gb_artifact", flow("self.big = bytearray(2 * 1024 ** 3)"), "failed",
             "memory limit", args=("--memory-limit", "500"), traceback_ok=True),
        Case("many_artifacts", flow("for i in range(5000):\n    setattr(self, f'a{i}', i)"),
             "succeeded"),
        Case("huge_parameter", flow("pass", params='p = Parameter("p", default="x" * 5_000_000)'),
             "succeeded"),
        Case("merge_conflict", flow("pass", steps=SPLIT_STEPS, after_start="a, self.b"),
             "failed", "x", traceback_ok=True),
        Case("foreach_not_a_list", flow("self.items = 5", steps=FOREACH_STEPS,
                                        after_start='each, foreach="items"'), "failed",
             "items"),
        Case("foreach_ten_million", flow("self.items = range(10_000_000)", steps=FOREACH_STEPS,
                                         after_start='each, foreach="items"'), "failed",
             "max-num-splits", args=("--max-num-splits", "1000")),
        # -- processes
        Case("fork_and_wait", flow("pids = []\nfor _ in range(3):\n    pid = os.fork()\n"
                                   "    if pid == 0:\n        time.sleep(0.2)\n"
                                   "        os._exit(0)\n    pids.append(pid)\n"
                                   "for pid in pids:\n    os.waitpid(pid, 0)"), "succeeded"),
        Case("fork_and_leave", flow("for _ in range(3):\n    if os.fork() == 0:\n"
                                    "        time.sleep(60)\n        os._exit(0)"), "succeeded"),
        Case("thread_forever", flow("import threading\n"
                                    "threading.Thread(target=time.sleep, args=(3600,)).start()"),
             "succeeded"),
    ]


def verdict(case: Case, folder: Path, code: int, out: str) -> list[str]:
    """What is wrong with how Flowdeck handled the case (empty: all as expected)."""
    problems = []
    lowered = out.lower()
    if code == -999:
        return ["did not end (timed out)"]
    if case.expect == "succeeded" and code != 0:
        problems.append(f"exited {code}, expected success: {out.strip()[-300:]}")
    if case.expect != "succeeded" and code == 0:
        problems.append(f"exited 0, expected {case.expect}")
    if case.message and case.message.lower() not in lowered:
        problems.append(f"the output does not say {case.message!r}: {out.strip()[-300:]}")
    frames = our_frames(out)
    if frames:
        problems.append(f"traceback through Flowdeck's own code: {frames[-1]}")
    elif not case.traceback_ok and "Traceback (most recent call last)" in out:
        problems.append("a traceback for a mistake the user's code did not raise")
    problems += client_problems(case, folder)
    if case.check is not None:
        problems += case.check(folder)
    return problems


def client_problems(case: Case, folder: Path) -> list[str]:
    """The run as the client reads it back agrees with the verdict."""
    from flowdeck import Flow
    runs_dir = folder / ".flowdeck" / "BadFlow" / "runs"
    made = runs_dir.is_dir() and any(p.name[0] != "." for p in runs_dir.iterdir())
    if case.expect in ("lint", "error"):
        return ["a run was made for a file that cannot run"] if made and \
            case.expect == "lint" else []
    if not made:
        return ["no run was recorded"]
    try:
        latest = Flow("BadFlow", root=folder / ".flowdeck").latest_run
        if latest is None:
            return ["the client lists no run"]
        status = latest.status
        if status != case.expect:
            return [f"the client reads the run back {status}"]
        if case.expect == "failed":
            error = latest.exception or {}
            said = f"{error.get('type', '')} {error.get('message', '')}".lower()
            if case.message.lower() not in said:
                return [f"the run's error does not say {case.message!r}: {said[:300]}"]
    except Exception as exc:  # any error reading back is what this looks for
        return [f"the client raised {type(exc).__name__}: {str(exc)[:300]}"]
    return []


def run_case(case: Case, work: Path) -> list[str]:
    folder = work / case.name
    folder.mkdir()
    path = folder / "flow.py"
    path.write_bytes(case.source if isinstance(case.source, bytes) else
                     case.source.encode("utf-8", "surrogatepass"))
    env = child_env(**{ENV_MARK: str(folder)})
    result = run([sys.executable, "-m", "flowdeck.cli.main", "run", str(path), *case.args],
                 folder, timeout=case.timeout, env=env)
    problems = verdict(case, folder, result.returncode, result.stdout + result.stderr)
    time.sleep(0.1)
    left = marked(ENV_MARK, str(folder))
    if left:
        kill_quietly(left)
        problems.append(f"processes outlived the run: {sorted(left)}")
    return problems


def main() -> int:
    cases = corpus()
    args = parse_args(__doc__.splitlines()[0], full=len(cases), quick=len(cases), unit="cases")
    tally = Tally("bad_inputs: a corpus of bad flow files through flowdeck run and the client")
    with Workdir("badinputs", args.keep) as work:
        for case in cases[:args.rounds]:
            began = time.monotonic()
            problems = run_case(case, work)
            tally.round(problems, f"{case.name} (expected {case.expect}"
                        f"{': ' + case.message if case.message else ''})")
            print(f"  {case.name}: {'ok' if not problems else 'LOST'} "
                  f"({time.monotonic() - began:.1f} s)", flush=True)
        tally.figure("cases", len(cases[:args.rounds]))
        tally.figure("expected verdicts", ", ".join(
            f"{kind} {sum(1 for c in cases[:args.rounds] if c.expect == kind)}"
            for kind in ("succeeded", "failed", "lint", "error")))
    return tally.report()


if __name__ == "__main__":
    sys.exit(main())
