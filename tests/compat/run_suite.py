"""Measure how much of Metaflow's core test suite passes on Flowdeck's engine.

    python3 -m tests.compat.run_suite --suite ../shared/metaflow-test-core [--jobs 2]
        [--only TEST[,TEST...]] [--graphs NAME,...] [--timeout SECONDS] [--json OUT]
        [--keep] [--verbose] [--write-baseline tests/compat/passing.txt]
        [--imports unchanged|rewrite]
        [--lenient-imports]          (diagnostic only; never the figure)

(from the repository root; `python3 tests/compat/run_suite.py ...` works anywhere).

For every valid (test, graph) pair of the "python3-all-local" context, as the
suite's own FlowFormatter generates it:

1. write test_flow.py and check_flow.py into a fresh temporary folder, with the
   test's REQUIRED_FILES: unchanged (the default, `--imports unchanged`), or with
   their `metaflow` import statements pointed at `flowdeck` and nothing else
   changed (`--imports rewrite`);
2. run `python -B -m flowdeck.engines.as_metaflow test_flow.py [top options] run
   [run options]` (unchanged: `metaflow` resolves to Flowdeck in that process only),
   or `python -B test_flow.py ...` (rewrite), passing only the context's options
   Flowdeck accepts, FLOWDECK_HOME in the folder and a `metaflow` package that
   refuses to import first on PYTHONPATH;
3. apply run_tests.py's outcome rules: a failed run is expected for SHOULD_FAIL
   tests and is followed by `resume [RESUME_STEP]` for RESUME tests (whose exit
   code run_tests.py does not look at); any other failed run, or a SHOULD_FAIL
   run that succeeds, fails the pair;
4. require a Flowdeck run in the folder's datastore, then run the test's own
   `check_results(flow, checker)` through the generated check_flow.py with a
   MetadataCheck implemented on Flowdeck's client (sandbox/helpers).

A pair passes only if all of that holds. The table lists, per test, the valid
pairs, passed, failed and the first failure reason; excluded tests are listed
with their reason and not run.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python3 tests/compat/run_suite.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tests.compat"

from flowdeck.engines.as_metaflow import ENTRY_MODULE  # noqa: E402
from tests.compat.suite import CARD_EXCLUSION, Pair, Suite, load_suite  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CORE = REPO / "core"
SANDBOX = HERE / "sandbox"
BLOCKED = SANDBOX / "blocked"
HELPERS = SANDBOX / "helpers"
DEFAULT_SUITE = REPO.parent / "shared" / "metaflow-test-core"
DEFAULT_TIMEOUT = 60.0
#: How the generated files meet Flowdeck. "unchanged": as generated, run through Flowdeck's
#: alias entry (`python -m flowdeck.engines.as_metaflow test_flow.py ...`, `metaflow`
#: resolving to Flowdeck in that process only). "rewrite": their `metaflow` import
#: statements pointed at `flowdeck` (suite.rewrite_imports), run as `python test_flow.py`.
IMPORT_MODES = ("unchanged", "rewrite")
DEFAULT_IMPORTS = "unchanged"


# -- the sandbox the flow and check processes run in ----------------------------------

def sandbox_env(context: dict, home: Path | None) -> dict[str, str]:
    """run_tests.py's environment (USER + the context's env, not ours) plus Flowdeck's."""
    env = {
        "USER": os.environ.get("USER", "tester"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf_8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    nonce = str(uuid.uuid4())
    env.update({k: str(v).format(nonce=nonce) for k, v in context.get("env", {}).items()})
    # blocked `metaflow` first, then Flowdeck's `metaflow_test` helpers, then Flowdeck
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (BLOCKED, HELPERS, CORE))
    if home is not None:
        env["FLOWDECK_HOME"] = str(home)
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the process group we started for this command
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Proc:
    cmd: list[str]
    returncode: int | None          # None: killed at the time limit
    stdout: str
    stderr: str
    seconds: float


def run_command(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Proc:
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        code = None
    finally:
        _kill_group(proc)  # workers a finished flow left behind, if any
    return Proc(cmd, code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                time.monotonic() - start)


# -- what Flowdeck accepts (asked once) ---------------------------------------------------

@dataclass
class Probe:
    missing_imports: list[list[str]]
    help: dict[str, list[str]]
    metaflow_blocked: bool
    alias_is_flowdeck: bool = False  # with the alias entry's finder, `metaflow` is `flowdeck`


def probe(pairs: list[Pair], context: dict) -> Probe:
    wanted = sorted({imp for p in pairs for imp in flowdeck_imports(p.flow_code)}
                    | {imp for p in pairs for imp in flowdeck_imports(p.check_code)})
    with tempfile.TemporaryDirectory(prefix="flowdeck_compat_") as folder:
        request = Path(folder) / "request.json"
        result = Path(folder) / "result.json"
        request.write_text(json.dumps({"imports": wanted}), encoding="utf-8")
        proc = run_command([sys.executable, "-B", str(SANDBOX / "probe.py"), str(request),
                            str(result)], Path(folder), sandbox_env(context, None), 120)
        if proc.returncode != 0 or not result.exists():
            raise RuntimeError(f"the Flowdeck probe failed:\n{proc.stdout}\n{proc.stderr}")
        return Probe(**json.loads(result.read_text(encoding="utf-8")))


def flowdeck_imports(source: str) -> set[tuple[str, str]]:
    """(module, name) for every `from flowdeck... import name` / `import flowdeck.x`."""
    out: set[tuple[str, str]] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return out
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "flowdeck" or node.module.startswith("flowdeck.")):
            out.update((node.module, a.name) for a in node.names)
        elif isinstance(node, ast.Import):
            out.update((a.name, "*") for a in node.names
                       if a.name == "flowdeck" or a.name.startswith("flowdeck."))
    return out


def bind_missing_names(source: str, missing: set[tuple[str, str]]) -> str:
    """--lenient-imports only: bind names Flowdeck lacks to placeholders that fail on use.

    Each `from flowdeck... import` statement importing a missing name is replaced,
    on the same line(s), by an import of the names that exist plus
    `Name = _fd_missing("module", "Name")` for the others (line numbers are kept).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    lines = source.split("\n")
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
             and any((n.module, a.name) in missing for a in n.names)]
    for node in sorted(nodes, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        if node.end_lineno != node.lineno and any(
                other is not node and other.lineno <= node.end_lineno and other.end_lineno >= node.lineno
                for other in nodes):
            continue  # never seen in generated code; leave it strict
        have = [a for a in node.names if (node.module, a.name) not in missing]
        lack = [a for a in node.names if (node.module, a.name) in missing]
        parts = []
        if have:
            parts.append(f"from {node.module} import " + ", ".join(
                f"{a.name} as {a.asname}" if a.asname else a.name for a in have))
        parts.append("from flowdeck_compat_missing import missing as _fd_missing")
        parts += [f"{a.asname or a.name} = _fd_missing({node.module!r}, {a.name!r})"
                  for a in lack]
        first, last = node.lineno - 1, node.end_lineno - 1
        head = lines[first][:node.col_offset]
        tail = lines[last][node.end_col_offset:]
        new = head + "; ".join(parts) + tail
        lines[first:last + 1] = [new] + [""] * (last - first)
    return "\n".join(lines)


def _option_name(option: str) -> str:
    return option.split("=", 1)[0]


@dataclass
class CommandLine:
    """The context's options split into what Flowdeck accepts and what it does not."""

    top: list[str] = field(default_factory=list)        # before the command
    run: list[str] = field(default_factory=list)        # after `run`
    resume: list[str] = field(default_factory=list)     # after `resume`
    run_id_file: bool = False
    dropped: list[str] = field(default_factory=list)    # "option (why)"
    alias: bool = False             # run the unchanged file through the alias entry

    @classmethod
    def decide(cls, context: dict, help_: dict[str, list[str]]) -> "CommandLine":
        top_ok, run_ok, resume_ok = (set(help_.get(k, [])) for k in ("top", "run", "resume"))
        line = cls()
        for opt in context.get("top_options", []):
            name = _option_name(opt)
            if name in top_ok:
                line.top.append(opt)
            elif name in run_ok:  # Flowdeck takes it after the command (e.g. --quiet)
                line.run.append(opt)
                if name in resume_ok:
                    line.resume.append(opt)
            else:
                line.dropped.append(f"{opt} (top-level option)")
        for opt in context.get("run_options", []):
            name = _option_name(opt)
            if name in run_ok:
                line.run.append(opt)
            else:
                line.dropped.append(f"{opt} (run option)")
            if name in resume_ok:
                line.resume.append(opt)
        line.run_id_file = "--run-id-file" in run_ok
        if not line.run_id_file:
            line.dropped.append("--run-id-file run-id (run_tests.py adds it to run and resume)")
        return line

    def command(self, mode: str, args: list[str] | None = None) -> list[str]:
        entry = ["-m", ENTRY_MODULE] if self.alias else []
        cmd = [sys.executable, "-B", *entry, "test_flow.py", *self.top, mode, *(args or [])]
        if self.run_id_file:
            cmd += ["--run-id-file", "run-id"]
        cmd += self.run if mode == "run" else self.resume
        return cmd


# -- one pair ----------------------------------------------------------------------------

@dataclass
class Outcome:
    test: str
    graph: str
    passed: bool
    stage: str = ""          # import, run, resume, engine, check, timeout
    reason: str = ""         # one line
    group: str = ""          # the to-do list group
    seconds: float = 0.0
    missing_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    detail: str = ""         # longer text for --verbose / JSON

    @property
    def key(self) -> str:
        return f"{self.test}/{self.graph}"


_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Failed|Interrupt|Timeout|"
                       r"Missing|Mismatch|Warning|Here|Retry))(?::\s?(.*))?$")


_LINT_LINE = re.compile(r"^(?:.*/)?([\w.-]+\.py):(\d+): error: (.*)$")
_RUN_FAILED = re.compile(r"^Run \S+ failed: (.*)$")


def error_line(proc: Proc) -> str:
    """The most telling line of a failed command's output.

    In order: Flowdeck's first lint error (`file:line: error: ...`, path cut to the
    file name), its run summary (`Run ID failed: step `x` raised ...`), an argparse
    or usage `error:` line, the last exception line of a traceback, the last line.
    """
    err_lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    out_lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    for ln in err_lines + out_lines:
        m = _LINT_LINE.match(ln)
        if m:
            return f"lint: {m.group(1)}:{m.group(2)}: {m.group(3)}"
    for ln in reversed(err_lines + out_lines):
        m = _RUN_FAILED.match(ln)
        if m:
            return m.group(1)
    for ln in reversed(err_lines):
        if ln.startswith("error:") or ": error:" in ln:
            return ln
    for ln in reversed(err_lines + out_lines):
        if _EXC_LINE.match(ln):
            return ln
    return (err_lines or out_lines or ["(no output)"])[-1]


def _normal(text: str, width: int = 90) -> str:
    """A failure message without what varies between pairs (paths, flow names, ids, steps)."""
    text = re.sub(r"/\S*/", "", text)
    text = re.sub(r"\b\w+Flow\b", "<Flow>", text)
    text = re.sub(r"\b\d{10,}-\w+\b", "<run>", text)
    text = re.sub(r"(step|Step) `\w+`", r"\1 `…`", text)
    text = re.sub(r"\(task \d+\)", "", text)
    text = re.sub(r"\(line \d+\)", "", text)
    text = re.sub(r"\.py:\d+:", ".py:", text)
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.splitlines()[-n:])


def flowdeck_runs(home: Path, flow_name: str) -> list[tuple[float, str, str]]:
    """(start, run id, engine) of every run recorded for the flow, oldest first.

    `engine` is run.json's "engine" field ("flowdeck" for Flowdeck's own engine;
    "" when the record has no such field).
    """
    runs = []
    for run_json in (home / flow_name).rglob("run.json"):  # <Flow>/runs/<id>/run.json today
        try:
            info = json.loads(run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        runs.append((float(info.get("start") or 0), str(info.get("run_id") or
                                                        run_json.parent.name),
                     str(info.get("engine") or "")))
    return sorted(runs)


def missing_names(pair: Pair, probe_result: Probe) -> list[str]:
    """The names this pair's generated code imports from Flowdeck that Flowdeck lacks."""
    used = flowdeck_imports(pair.flow_code) | flowdeck_imports(pair.check_code)
    return sorted({f"{m}.{n}" if n != "*" else m
                   for m, n, _ in probe_result.missing_imports if (m, n) in used})


def run_pair(pair: Pair, suite_root: Path, context: dict, line: CommandLine,
             missing: list[str], timeout: float, keep: bool) -> Outcome:
    start = time.monotonic()
    outcome = Outcome(pair.test, pair.graph, False, missing_names=list(missing))
    folder = Path(tempfile.mkdtemp(prefix=f"flowdeck_compat_{pair.test}_{pair.graph}_"))
    try:
        _run_pair_in(folder, pair, suite_root, context, line, timeout, outcome)
    except Exception as exc:  # a runner bug must show, not hide as a pass
        outcome.passed = False
        outcome.stage, outcome.reason = "runner", f"{type(exc).__name__}: {exc}"
    finally:
        outcome.seconds = time.monotonic() - start
        if keep:
            outcome.detail = f"[kept in {folder}]\n" + outcome.detail
        else:
            shutil.rmtree(folder, ignore_errors=True)
    outcome.group = classify(outcome)
    return outcome


def _run_pair_in(folder: Path, pair: Pair, suite_root: Path, context: dict,
                 line: CommandLine, timeout: float, outcome: Outcome) -> None:
    (folder / "test_flow.py").write_text(pair.flow_code, encoding="utf-8")
    (folder / "check_flow.py").write_text(pair.check_code, encoding="utf-8")
    for name in pair.copy_files:  # run_tests.py copies these beside the flow
        shutil.copy2(suite_root / "tests" / name, folder / name)
    home = folder / ".flowdeck"
    env = sandbox_env(context, home)

    def fail(stage: str, reason: str, proc: Proc | None = None) -> None:
        outcome.stage, outcome.reason = stage, reason
        if proc is not None:
            outcome.detail += (f"$ {' '.join(proc.cmd[2:])}\n(exit {proc.returncode})\n"
                               f"{_tail(proc.stderr)}\n{_tail(proc.stdout, 10)}\n")

    run = run_command(line.command("run"), folder, env, timeout)
    resumed: Proc | None = None
    if run.returncode is None:
        return fail("timeout", f"run killed after {timeout:g}s", run)
    if run.returncode != 0:
        if pair.should_fail:
            pass  # "Flow failed as expected."
        elif pair.should_resume:
            args = [pair.resume_step] if pair.resume_step else []
            resumed = run_command(line.command("resume", args), folder, env, timeout)
            if resumed.returncode is None:
                return fail("timeout", f"resume killed after {timeout:g}s", resumed)
            # run_tests.py does not look at resume's exit code: the checks decide.
        else:
            return fail("run", f"run failed (exit {run.returncode}): {error_line(run)}", run)
    elif pair.should_fail:
        return fail("run", "the flow should have failed but it succeeded", run)

    last = resumed or run
    runs = flowdeck_runs(home, pair.flow_name)
    if not runs:
        return fail("engine", f"no Flowdeck run was recorded (exit {last.returncode}): "
                    f"{error_line(last)}", last)
    run_id = ""
    if line.run_id_file and (folder / "run-id").exists():
        run_id = (folder / "run-id").read_text(encoding="utf-8").strip()
    run_id = run_id or runs[-1][1]
    engine = next((e for _, rid, e in runs if rid == run_id), "")
    if engine not in ("", "flowdeck"):
        return fail("engine", f"run {run_id} was executed by engine {engine!r}, not Flowdeck's",
                    last)

    result_file = folder / "check-result.json"
    alias = ["--alias"] if line.alias else []
    check = run_command([sys.executable, "-B", str(SANDBOX / "check_driver.py"), *alias,
                         str(result_file), run_id, *context.get("top_options", [])],
                        folder, env, timeout)
    if check.returncode is None:
        return fail("timeout", f"check killed after {timeout:g}s", check)
    try:
        result = json.loads(result_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return fail("check", f"check driver crashed (exit {check.returncode}): "
                    f"{error_line(check)}", check)
    outcome.notes = result.get("notes", [])
    if result.get("ok"):
        outcome.passed = True
        if resumed is not None and resumed.returncode != 0:
            outcome.notes.append("passed although `resume` failed: run_tests.py never looks "
                                 "at resume's exit code, only at check_results")
            outcome.detail += f"resume exit {resumed.returncode}: {error_line(resumed)}\n"
        return None
    message = " ".join(str(result.get("message", "")).split())
    where = result.get("where", "")
    reason = f"{result.get('type')}: {message}" if message else f"{result.get('type')} at {where}"
    if resumed is not None and resumed.returncode != 0:
        reason = (f"resume failed (exit {resumed.returncode}): {error_line(resumed)}; "
                  f"then check: {reason}")
        outcome.detail += f"$ resume\n{_tail(resumed.stderr)}\n"
    outcome.detail += f"check {where}\n{result.get('traceback', '')}"
    return fail("check", reason)


# -- grouping the failures into a to-do list ---------------------------------------------

def classify(o: Outcome) -> str:
    """The to-do list group of a failure (what Flowdeck would have to change)."""
    if o.passed:
        return ""
    r = o.reason
    m = re.search(r"cannot import name '([^']+)' from '([^']+)'", r)
    if m:
        return f"ImportError: {m.group(2)} lacks `{m.group(1)}`"
    m = re.search(r"No module named '([^']+)'", r)
    if m:
        return f"ImportError: no module `{m.group(1)}`"
    m = re.search(r"MissingInFlowdeck: (\S+) is used", r)
    if m:
        return f"name used that Flowdeck lacks: `{m.group(1)}`"
    if "metaflow is blocked" in r:
        return "ImportError: code reached the real `metaflow`"
    m = re.search(r"`([\w.]+)` is not available on Flowdeck's engine", r)
    if m:
        return f"module the alias entry lacks: `{m.group(1)}`"
    m = re.search(r"`(\w+)` is imported from metaflow, and Flowdeck's engine has no", r)
    if m:
        return f"name used that Flowdeck lacks: `{m.group(1)}`"
    if o.stage == "timeout":
        return "time limit"
    if o.stage == "runner":
        return "runner error"
    if "unrecognized arguments" in r or "invalid choice" in r or ": no option --" in r \
            or ": unexpected argument `" in r:
        return "CLI option rejected: " + _normal(r.split("error:")[-1], 60)
    m = re.search(r"lint: \S+ (.*)", r)
    if m:
        return "lint refusal: " + _normal(m.group(1))
    m = re.search(r"Flowdeck client lacks ([^(;]+)", r)
    if m:
        return f"client feature missing: {m.group(1).strip()}"
    m = re.search(r"AttributeError: '(Run|Step|Task|Flow|DataArtifact|MetaflowData)' object "
                  r"has no attribute '(\w+)'", r)
    if m and o.stage == "check":
        return f"client attribute missing: {m.group(1)}.{m.group(2)}"
    if o.stage == "check" and re.search(r"object is not iterable", r) and "Flow" in r:
        return "FlowSpec not iterable (`for step in flow`)"
    if "resume failed" in r:
        return "resume failed: " + _normal(r.split("; then check:")[0].split(": ", 1)[-1])
    if o.stage == "check" and re.match(r"(AssertionError|ExpectationFailed|AssertArtifactFailed|"
                                       r"AssertLogFailed|AssertCardFailed)", r):
        return "semantic mismatch (check assertion)"
    if o.stage == "check":
        return "client API mismatch: " + _normal(r)
    if "should have failed" in r:
        return "semantic mismatch (expected failure did not happen)"
    if o.stage == "run":
        return "step error: " + _normal(r.split(": ", 1)[-1])
    if o.stage == "engine":
        return "no Flowdeck run recorded: " + _normal(r.split(": ", 1)[-1])
    return f"other ({o.stage})"


# -- the whole measurement ---------------------------------------------------------------

@dataclass
class Report:
    suite: str
    context: str
    outcomes: list[Outcome]
    tests: list[dict]
    command_line: dict
    probe: dict
    seconds: float
    jobs: int
    timeout: float
    lenient_imports: bool = False
    imports: str = DEFAULT_IMPORTS  # IMPORT_MODES: unchanged files (alias entry) or rewritten
    core: str = ""               # fingerprint of core/ when the measurement started
    core_changed: bool = False   # core/ was edited while the pairs ran

    @property
    def measured(self) -> int:
        return len(self.outcomes)

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)


def core_fingerprint() -> str:
    """A hash of Flowdeck's core sources: the measurement says if they changed under it."""
    import hashlib
    digest = hashlib.sha256()
    for path in sorted(CORE.rglob("*.py")):
        try:
            digest.update(str(path.relative_to(CORE)).encode() + b"\0" + path.read_bytes())
        except OSError:
            continue
    return digest.hexdigest()[:16]


#: Tests whose pairs took the longest (seconds, 2 jobs, 2 December 2026): 1,200 foreach
#: tasks (WideForeachTest 6.8), a run plus a resume (Resume*, 1.6-3.8), steps that sleep
#: into their time limit (TimeoutDecoratorTest 1.8-3.3), 2.6 for LargeMflogTest, retries
#: (TagCatchTest, CatchRetryTest 0.8-2.0). Only the order pairs start in depends on it.
SLOW_TESTS = {"WideForeachTest": 8.0, "TimeoutDecoratorTest": 3.0, "LargeMflogTest": 3.0,
              "TagCatchTest": 1.5, "CatchRetryTest": 1.5}


def expected_cost(pair: Pair) -> float:
    """A rough guess of how long a pair takes, to start the long ones first."""
    cost = SLOW_TESTS.get(pair.test, 1.0)
    if pair.should_resume:
        cost += 1.0
    if "nested" in pair.graph and "foreach" in pair.graph:
        cost += 1.0
    return cost


def measure(suite_path: str | os.PathLike[str], jobs: int = 2, only: set[str] | None = None,
            graphs: set[str] | None = None, timeout: float = DEFAULT_TIMEOUT,
            keep: bool = False, lenient_imports: bool = False, progress=None,
            imports: str = DEFAULT_IMPORTS, include_cards: bool = False) -> Report:
    if imports not in IMPORT_MODES:
        raise ValueError(f"imports must be one of {IMPORT_MODES}, not {imports!r}")
    if lenient_imports:  # it binds names in rewritten `from flowdeck` imports
        imports = "rewrite"
    started = time.monotonic()
    core_before = core_fingerprint()
    suite: Suite = load_suite(suite_path)
    if include_cards:  # measure the card tests (card_*.py) too; not in the default figure
        for test in suite.tests:
            if test.excluded == CARD_EXCLUSION:
                test.excluded = None
    only_l = {t.lower() for t in only} if only else None
    graphs_l = {g.lower() for g in graphs} if graphs else None
    generated = [p for p in suite.measured_pairs()
                 if (only_l is None or p.test.lower() in only_l)
                 and (graphs_l is None or p.graph.lower() in graphs_l)]
    rewritten = [p.rewritten() for p in generated]  # what Flowdeck must provide, by its names
    probe_result = probe([p.rewritten() for p in suite.measured_pairs()], suite.context)
    if not probe_result.metaflow_blocked:
        raise RuntimeError("`import metaflow` succeeded in the sandbox: the measurement "
                           "would not be Flowdeck alone")
    if imports == "unchanged" and not probe_result.alias_is_flowdeck:
        raise RuntimeError("with the alias entry's finder installed, `metaflow` was not "
                           "Flowdeck's own modules in the sandbox")
    line = CommandLine.decide(suite.context, probe_result.help)
    line.alias = imports == "unchanged"
    names = {p.key: missing_names(p, probe_result) for p in rewritten}
    pairs = rewritten if imports == "rewrite" else generated
    if lenient_imports:  # diagnostic only: see bind_missing_names
        lacking = {(m, n) for m, n, _ in probe_result.missing_imports}
        for p in pairs:
            p.flow_code = bind_missing_names(p.flow_code, lacking)
            p.check_code = bind_missing_names(p.check_code, lacking)

    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        # The longest pairs start first, so none is left running alone at the end; the
        # outcomes keep the suite's order.
        order = sorted(range(len(pairs)), key=lambda i: expected_cost(pairs[i]), reverse=True)
        submitted = {i: pool.submit(run_pair, pairs[i], suite.root, suite.context, line,
                                    names[pairs[i].key], timeout, keep) for i in order}
        futures = [submitted[i] for i in range(len(pairs))]
        for future in futures:
            outcome = future.result()
            outcomes.append(outcome)
            if progress:
                progress(outcome, len(outcomes), len(pairs))

    tests = []
    for t in suite.tests:
        if only_l is not None and t.name.lower() not in only_l:
            continue
        tests.append({"name": t.name, "file": t.file, "valid": len(t.pairs),
                      "excluded": t.excluded, "disabled": t.disabled_in_context,
                      "load_error": t.load_error})
    return Report(suite=str(suite.root), context=suite.context["name"], outcomes=outcomes,
                  tests=tests, command_line=asdict(line), probe=asdict(probe_result),
                  seconds=time.monotonic() - started, jobs=jobs, timeout=timeout,
                  lenient_imports=lenient_imports, imports=imports, core=core_before,
                  core_changed=core_fingerprint() != core_before)


# -- printing -------------------------------------------------------------------------------

def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def format_report(report: Report, reason_width: int = 110) -> str:
    by_test: dict[str, list[Outcome]] = OrderedDict()
    for o in report.outcomes:
        by_test.setdefault(o.test, []).append(o)
    rows = []
    for t in report.tests:
        outs = by_test.get(t["name"], [])
        if t["excluded"]:
            rows.append((t["name"], str(t["valid"]), "-", "-", f"excluded: {t['excluded']}"))
        elif t["disabled"]:
            rows.append((t["name"], str(t["valid"]), "-", "-",
                         f"excluded: disabled in {report.context} (contexts.json)"))
        elif t["load_error"] and not outs:
            rows.append((t["name"], "?", "-", "-", f"not loaded: {t['load_error']}"))
        else:
            passed = sum(o.passed for o in outs)
            first = next((o for o in outs if not o.passed), None)
            reason = f"[{first.graph}] {first.reason}" if first else ""
            rows.append((t["name"], str(len(outs)), str(passed), str(len(outs) - passed),
                         reason))
    head = ("test", "valid", "pass", "fail", "first failure (graph) reason")
    w0 = max(len(head[0]), *(len(r[0]) for r in rows)) if rows else len(head[0])
    how = ("generated files unchanged, run through Flowdeck's alias entry"
           if report.imports == "unchanged" else
           "generated files' `metaflow` imports rewritten to `flowdeck`")
    out = [f"Metaflow core suite on Flowdeck — context {report.context}, suite {report.suite}",
           f"Imports: {report.imports} ({how})", ""]
    if report.lenient_imports:
        out[-1:] = ["DIAGNOSTIC RUN (--lenient-imports): names Flowdeck lacks were bound to "
                    "placeholders that fail on use; this is NOT the compatibility figure.", ""]
    fmt = f"{{:<{w0}}}  {{:>5}}  {{:>4}}  {{:>4}}  {{}}"
    out.append(fmt.format(*head))
    out.append(fmt.format("-" * w0, "-----", "----", "----", "-" * 30))
    for r in rows:
        out.append(fmt.format(r[0], r[1], r[2], r[3], _clip(r[4], reason_width)))
    excluded_pairs = sum(t["valid"] for t in report.tests if t["excluded"] or t["disabled"])
    out += ["",
            f"TOTAL ({report.imports}): {report.passed} of {report.measured} test x graph pairs "
            "pass on Flowdeck "
            f"({report.measured - report.passed} fail; {excluded_pairs} more valid pairs "
            f"excluded as listed)"]
    groups = Counter(o.group for o in report.outcomes if not o.passed)
    if groups:
        out += ["", "Failures by group (the to-do list):"]
        examples = {}
        for o in report.outcomes:
            if not o.passed:
                examples.setdefault(o.group, o)
        for group, n in groups.most_common():
            ex = examples[group]
            out.append(f"  {n:4d}  {group}")
            out.append(f"        e.g. {ex.test}/{ex.graph}: {_clip(ex.reason, reason_width)}")
    names = Counter(n for o in report.outcomes for n in o.missing_names)
    if names:
        out += ["", "Names the generated code imports that Flowdeck lacks (pairs using each; "
                "Python reports only the first per import line):"]
        out.append("  " + ", ".join(f"{n} ({c})" for n, c in names.most_common()))
    line = report.command_line
    entry = f"-m {ENTRY_MODULE} " if line.get("alias") else ""
    out += ["", f"Command line: python -B {entry}test_flow.py "
            + " ".join([*line["top"], "run", *line["run"]]),
            "  context options not accepted by Flowdeck (not passed): "
            + ("; ".join(line["dropped"]) or "none")]
    notes = Counter(n for o in report.outcomes for n in o.notes)
    for note, n in notes.most_common():
        out.append(f"  checker note ({n} pairs): {note}")
    out.append(f"Wall time: {report.seconds:.1f}s for {report.measured} pairs with "
               f"{report.jobs} jobs (per-command time limit {report.timeout:g}s); "
               f"core/ fingerprint {report.core}")
    if report.core_changed:
        out.append("WARNING: core/ changed while the pairs ran; the figure mixes two "
                   "versions of Flowdeck. Run it again.")
    return "\n".join(out)


def report_json(report: Report) -> dict:
    data = asdict(report)
    data["measured"], data["passed"] = report.measured, report.passed
    data["passing_pairs"] = sorted(o.key for o in report.outcomes if o.passed)
    return data


BASELINE_HEADER = """\
# Metaflow core suite pairs (Test/graph) that pass on Flowdeck: tests/compat/test_compat_suite.py
# fails when one of them stops passing. Regenerate after a full strict measurement with
#   python3 -m tests.compat.run_suite --write-baseline tests/compat/passing.txt
# (add pairs that start passing; remove one only with a reason in the commit message).
"""


def read_baseline(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


def write_baseline(path: Path, report: Report) -> None:
    passing = sorted(o.key for o in report.outcomes if o.passed)
    summary = (f"# Measured: {report.passed} of {report.measured} pairs "
               f"(context {report.context}, imports {report.imports}, core/ fingerprint "
               f"{report.core}).\n")
    path.write_text(BASELINE_HEADER + summary + "".join(f"{k}\n" for k in passing),
                    encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.compat.run_suite",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default=str(DEFAULT_SUITE),
                        help="Metaflow's test/core folder (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="pairs run at once (default 2)")
    parser.add_argument("--only", default="", help="comma-separated test class names")
    parser.add_argument("--graphs", default="", help="comma-separated graph names")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="time limit of each flow/check command, seconds (default "
                        "%(default)s)")
    parser.add_argument("--json", help="also write the full report here")
    parser.add_argument("--keep", action="store_true", help="keep each pair's folder")
    parser.add_argument("--imports", choices=IMPORT_MODES, default=DEFAULT_IMPORTS,
                        help="unchanged: run the generated files as they are, through "
                        "Flowdeck's alias entry (default); rewrite: point their `metaflow` "
                        "import statements at `flowdeck` and run them as scripts")
    parser.add_argument("--lenient-imports", action="store_true",
                        help="DIAGNOSTIC, not the figure: bind names Flowdeck lacks to "
                        "placeholders that fail only when used, to see what fails next")
    parser.add_argument("--include-cards", action="store_true",
                        help="also measure Metaflow's card tests (card_*.py), left out of "
                        "the default figure")
    parser.add_argument("--write-baseline", metavar="FILE",
                        help="write the passing pairs to FILE (e.g. tests/compat/passing.txt)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="print each failing pair's output")
    args = parser.parse_args(argv)
    split = lambda s: {x.strip() for x in s.split(",") if x.strip()} or None  # noqa: E731

    def progress(o: Outcome, done: int, total: int) -> None:
        mark = "pass" if o.passed else "FAIL"
        print(f"[{done:3d}/{total}] {mark} {o.key} ({o.seconds:.1f}s)"
              + ("" if o.passed else f": {_clip(o.reason, 100)}"), file=sys.stderr, flush=True)
        if args.verbose and not o.passed:
            print(o.detail, file=sys.stderr, flush=True)

    report = measure(args.suite, jobs=args.jobs, only=split(args.only),
                     graphs=split(args.graphs), timeout=args.timeout, keep=args.keep,
                     lenient_imports=args.lenient_imports, progress=progress,
                     imports=args.imports, include_cards=args.include_cards)
    print(format_report(report))
    if args.write_baseline:
        if args.lenient_imports or args.only or args.graphs or args.include_cards:
            parser.error("--write-baseline needs the full, strict measurement (no "
                         "--lenient-imports, --only, --graphs or --include-cards)")
        write_baseline(Path(args.write_baseline), report)
    if args.json:
        Path(args.json).write_text(json.dumps(report_json(report), indent=1,
                                              ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
