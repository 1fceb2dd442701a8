"""Engine benchmark (issue 15): Flowdeck against its peers and the hand-written floors, one run.

Every workload (bench/workloads.py says what each tool runs) is a whole `python file.py`
process. Per workload, every available tool runs once untimed (bytecode caches, store
folders), then `--repeat` interleaved rounds (the 100 MB cases at least 9), the order
rotated each round; figures are medians (bench/harness.py: wall, CPU of the whole process tree, the top process's peak
RSS). Peers that are not installed print "not installed" (`pip install -e '.[bench]'`).

In the same run it measures the floors (`python -c pass`, `python -I -S -c pass`,
`python -c "import flowdeck"`, and a fork+exit+wait loop of 1,000 children, bare and
after `import flowdeck`), and linearity: Flowdeck's foreach at 1,000 against 10,000
items (per-task wall, CPU and orchestrator memory; `--quick` skips the 10,000 run). It
prints the machine's load before and after, the tables in Markdown (ratio = tool /
Flowdeck, above 1 is slower than Flowdeck), and every goal of issue 15 as met / not met
with its figure.

    python bench/bench_engine.py                        # everything, 5 rounds
    python bench/bench_engine.py --repeat 1 --quick     # a smoke run of the harness
    python bench/bench_engine.py --only hello,linear10,floors --json out.json
    python bench/bench_engine.py --tools flowdeck,dask,floor
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import (
    BenchError,
    Command,
    Machine,
    Series,
    interleave,
    keep_until_the_end,
    remove_leftovers,
)
from workloads import FORK_FLOOR, TOOLS, Tool, Workload, fanout_workers

ARRAY_ROUNDS = 9
CASES = [
    Workload("hello", "hello, 2 steps", "hello", tasks=2),
    Workload("linear10", "10-step linear", "linear", tasks=10),
    Workload("foreach20", "foreach 20 + join", "foreach", tasks=23, n=20),
    Workload("array-fresh", "100 MB array, fresh data (a real write)", "array", tasks=2,
             min_rounds=ARRAY_ROUNDS),
    Workload("array-repeat", "100 MB array, repeated data (seeded: the store dedups "
             "the write)", "array", tasks=2, seeded=True, min_rounds=ARRAY_ROUNDS),
    Workload("foreach1000", "foreach 1,000 trivial", "foreach", tasks=1003, n=1000),
    Workload("cpu4x1s", "4 x 1 s CPU, 2 workers", "cpu", tasks=7),
]
LARGE = Workload("foreach10000", "foreach 10,000 trivial", "foreach", tasks=10003, n=10000)
#: The 1,000-task run the linearity lines compare with 10,000: measured in rounds alternating
#: with it, Flowdeck alone, so both see the same machine (the foreach 1,000 case runs beside
#: the peers, and the 10,000 one after every case: the load differed between them).
PAIRED = Workload("foreach1000-paired", "foreach 1,000 trivial, alternating with 10,000",
                  "foreach", tasks=1003, n=1000)
FORK_N = 1000
#: The fork floor whose children also store their result (workloads.FORK_FLOOR): what any
#: engine with a process per task that persists every result pays at the least.
PERSIST_FLOOR = f"fork+persist+exit+wait x{FORK_N} after import flowdeck, then read back"
BY_NAME = {c.name: c for c in CASES}
GROUPS = [c.name for c in CASES] + ["floors", "linearity"]


@dataclass
class Goal:
    """One goal line of issue 15 and how this run measured it."""

    goal: str
    figure: str
    met: bool | None  # None: not measured in this run (case skipped or peer missing)

    @property
    def verdict(self) -> str:
        return "not measured" if self.met is None else ("met" if self.met else "not met")


def floor_commands(folder: Path) -> dict[str, Command]:
    """The interpreter and fork floors, as whole processes like every workload."""
    script = folder / "fork_floor.py"
    script.write_text(FORK_FLOOR)
    py = sys.executable
    fork = (py, str(script), str(FORK_N), str(fanout_workers()), "0")
    return {
        "python -c pass": Command((py, "-c", "pass"), folder),
        "python -I -S -c pass": Command((py, "-I", "-S", "-c", "pass"), folder),
        'python -c "import flowdeck"': Command((py, "-c", "import flowdeck"), folder),
        f"fork+exit+wait x{FORK_N}": Command(fork, folder, "forked"),
        f"fork+exit+wait x{FORK_N} after import flowdeck":
            Command((*fork, "--import-flowdeck"), folder, "forked"),
        PERSIST_FLOOR: Command((*fork, "--import-flowdeck", "--persist"), folder, "forked"),
    }


def measure_case(case: Workload, tools: list[Tool], repeat: int, warmup: bool = True,
                 ) -> dict[str, Series]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{case.name}-"))
    try:
        commands = {}
        for tool in tools:
            command = tool.command(case, folder)
            if command is not None:
                commands[tool.name] = command
        return interleave(commands, max(repeat, case.min_rounds), warmup=warmup)
    finally:
        keep_until_the_end(folder)


def fmt_s(seconds: float | None) -> str:
    return "-" if seconds is None else (f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s")


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def fmt_bytes(count: float) -> str:
    return f"{count / 1e6:.1f} MB" if abs(count) >= 1e6 else f"{count / 1e3:.1f} kB"


class Report:
    """Everything measured in this run, printed as Markdown and kept for --json."""

    def __init__(self, tools: list[Tool], skipped: dict[str, str]) -> None:
        self.tools = tools
        self.skipped = skipped  # tool name -> why it did not run
        self.cases: dict[str, dict[str, Series]] = {}
        self.floors: dict[str, Series] = {}
        self.large: Series | None = None
        self.paired: Series | None = None  # foreach 1,000 in rounds alternating with `large`

    def wall(self, case: str, tool: str) -> float | None:
        series = self.cases.get(case, {}).get(tool)
        return series.wall if series else None

    def cell(self, case: Workload, tool: Tool, ratio: bool) -> str:
        if tool.name in self.skipped:
            return self.skipped[tool.name].split(" (")[0]
        theirs, ours = self.wall(case.name, tool.name), self.wall(case.name, "flowdeck")
        if theirs is None:
            return "not run"
        if not ratio or tool.name == "flowdeck" or not ours:
            return fmt_s(theirs)
        return fmt_ratio(theirs / ours)

    def workload_table(self, ratio: bool) -> list[str]:
        rows = [c for c in CASES if c.name in self.cases]
        head = ["workload"] + [t.label for t in self.tools]
        lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for case in rows:
            lines.append("| " + " | ".join([case.label] + [self.cell(case, t, ratio)
                                                         for t in self.tools]) + " |")
        return lines

    def floor_lines(self) -> list[str]:
        lines = ["| floor | wall | CPU (tree) |", "|---|---|---|"]
        for name, series in self.floors.items():
            lines.append(f"| `{name}` | {fmt_s(series.wall)} | {fmt_s(series.cpu)} |")
        for bare, label in self.fork_per_task().items():
            lines.append(f"| per task, fork+exit+wait {label} | {fmt_ms(bare)} | |")
        return lines

    def fork_per_task(self) -> dict[float, str]:
        """Per-task fork floor: (fork loop - the interpreter it runs in) / children."""
        f = self.floors
        out: dict[float, str] = {}
        fork, bare = f.get(f"fork+exit+wait x{FORK_N}"), f.get("python -c pass")
        if fork and bare:
            out[(fork.wall - bare.wall) / FORK_N] = "(bare interpreter)"
        fork, imp = (f.get(f"fork+exit+wait x{FORK_N} after import flowdeck"),
                     f.get('python -c "import flowdeck"'))
        if fork and imp:
            out[(fork.wall - imp.wall) / FORK_N] = "(after import flowdeck)"
        persist = f.get(PERSIST_FLOOR)
        if persist and imp:
            out[(persist.wall - imp.wall) / FORK_N] = \
                "(after import flowdeck), with each child storing its result"
        return out

    def foreach_floors(self) -> str:
        """The hand-written floors of a 1,000-task foreach measured in this run, for its goal
        lines: where a goal lies below them, no process per task can meet it here."""
        parts = [f"{label} {fmt_s(series.wall)}" for label, series in (
            ("fork+exit+wait", self.floors.get(f"fork+exit+wait x{FORK_N} after import flowdeck")),
            ("the same, each child storing its result", self.floors.get(PERSIST_FLOOR)))
            if series is not None]
        return f" (hand-written floors after import flowdeck: {', '.join(parts)})" if parts else ""

    def per_task(self) -> list[tuple[Workload, Series]]:
        rows = []
        small = self.cases.get("foreach1000", {}).get("flowdeck")
        if small:
            rows.append((BY_NAME["foreach1000"], small))
        if self.paired:
            rows.append((PAIRED, self.paired))
        if self.large:
            rows.append((LARGE, self.large))
        return rows

    def linearity_pair(self) -> tuple[tuple[Workload, Series], tuple[Workload, Series]] | None:
        """The 1,000 and 10,000 runs the linearity lines compare: measured alternately when
        they were, else the foreach 1,000 case against the 10,000 run."""
        small = self.paired or self.cases.get("foreach1000", {}).get("flowdeck")
        if small is None or self.large is None:
            return None
        return (PAIRED if self.paired else BY_NAME["foreach1000"], small), (LARGE, self.large)

    def marginal_bytes(self) -> list[float | None]:
        """Orchestrator RSS added per task, for each row of `per_task`: a 1,000-task run
        against hello, the 10,000-task run against the 1,000 of its linearity pair; None
        where the base was not measured."""
        hello = self.cases.get("hello", {}).get("flowdeck")
        pair = self.linearity_pair()
        out: list[float | None] = []
        for case, series in self.per_task():
            base: tuple[int, int] | None
            if case is LARGE and pair is not None:
                (small_case, small), _ = pair
                base = (small.peak_rss, small_case.tasks)
            else:
                base = (hello.peak_rss, BY_NAME["hello"].tasks) if hello else None
            out.append(None if base is None
                       else (series.peak_rss - base[0]) / (case.tasks - base[1]))
        return out

    def linearity_lines(self) -> list[str]:
        lines = ["| Flowdeck | wall | wall per task | CPU per task (tree) | orchestrator peak "
                 "RSS | RSS added per task |", "|---|---|---|---|---|---|"]
        for (case, series), added in zip(self.per_task(), self.marginal_bytes()):
            extra = "-" if added is None else fmt_bytes(added)
            lines.append(f"| {case.label} | {fmt_s(series.wall)} | "
                         f"{fmt_ms(series.wall / case.n)} | {fmt_ms(series.cpu / case.n)} | "
                         f"{fmt_bytes(series.peak_rss)} | {extra} |")
        return lines

    def goals(self) -> list[Goal]:
        goals: list[Goal] = []
        ours = self.wall

        def absolute(case: str, limit: float, text: str, note: str = "") -> None:
            mine = ours(case, "flowdeck")
            goals.append(Goal(text, "not run" if mine is None else fmt_s(mine) + note,
                              None if mine is None else mine < limit))

        def ahead(case: str, tool: str, label: str, text: str, note: str = "") -> None:
            mine, theirs = ours(case, "flowdeck"), ours(case, tool)
            if mine is None or theirs is None:
                why = self.skipped.get(tool, "not run")
                goals.append(Goal(text, f"{label}: {why}", None))
            else:
                goals.append(Goal(text, f"{fmt_s(mine)} against {fmt_s(theirs)}{note}",
                                  mine < theirs))

        def within(case: str, floor: float | None, factor: float, floor_name: str,
                   text: str) -> None:
            mine = ours(case, "flowdeck")
            if mine is None or floor is None:
                goals.append(Goal(text, "not run", None))
            else:
                goals.append(Goal(text, f"{fmt_s(mine)} = {mine / floor:.2f}x {floor_name} "
                                        f"({fmt_s(floor)})", mine <= factor * floor))

        def faster(case: str, factor: float, text: str) -> None:
            mine, theirs = ours(case, "flowdeck"), ours(case, "metaflow")
            if mine is None or theirs is None:
                goals.append(Goal(text, self.skipped.get("metaflow", "not run"), None))
            else:
                goals.append(Goal(text, f"{theirs / mine:.1f}x ({fmt_s(theirs)} against "
                                        f"{fmt_s(mine)})", theirs / mine >= factor))

        floors = self.foreach_floors()
        absolute("foreach1000", 0.7, "foreach 1,000 trivial tasks under 0.7 s wall, persisted",
                 floors)
        ahead("foreach1000", "dask", "Dask local", "foreach 1,000 ahead of Dask's local scheduler",
              floors)
        ahead("foreach1000", "hamilton", "Hamilton", "foreach 1,000 ahead of Hamilton", floors)
        small = self.cases.get("foreach1000", {}).get("flowdeck")
        cpu = small.cpu / 1000 if small else None
        persist, imp = self.floors.get(PERSIST_FLOOR), self.floors.get('python -c "import flowdeck"')
        floor_cpu = (f" (the hand-written floor storing each result: "
                     f"{fmt_ms((persist.cpu - imp.cpu) / FORK_N)})" if persist and imp else "")
        goals.append(Goal("foreach 1,000: CPU per task (whole process tree) under 1.5 ms",
                          fmt_ms(cpu) + floor_cpu if cpu is not None else "not run",
                          None if cpu is None else cpu < 0.0015))
        pair = self.linearity_pair()
        if pair is not None:
            (c1, s1), (c2, s2) = pair
            which = " (alternating runs)" if self.paired else ""
            w1, w2 = s1.wall / c1.n, s2.wall / c2.n
            goals.append(Goal("linear: wall per task at 10,000 no more than at 1,000",
                              f"{fmt_ms(w2)} against {fmt_ms(w1)}{which}", w2 <= w1))
            u1, u2 = s1.cpu / c1.n, s2.cpu / c2.n
            goals.append(Goal("foreach input read O(1) per task: CPU per task at 10,000 no "
                              "more than at 1,000", f"{fmt_ms(u2)} against {fmt_ms(u1)}{which}",
                              u2 <= u1))
            rows = [case for case, _ in self.per_task()]
            added = dict(zip(rows, self.marginal_bytes()))
            small_added, large_added = added.get(c1), added.get(c2)
            if small_added is not None and large_added is not None:
                goals.append(Goal("orchestrator memory per task bounded: RSS added per task "
                                  "from 1,000 to 10,000 no more than up to 1,000",
                                  f"{fmt_bytes(large_added)} against {fmt_bytes(small_added)} "
                                  f"per task", large_added <= small_added))
            else:
                goals.append(Goal("orchestrator memory per task bounded",
                                  "needs the hello case (its RSS is the base)", None))
        else:
            goals.append(Goal("linear: foreach 1,000 against 10,000",
                              "not run (--quick or --only)", None))
        absolute("hello", 0.050, "hello under 50 ms")
        absolute("linear10", 0.075, "10-step linear under 75 ms")
        faster("hello", 16, "hello at least 16x faster than Metaflow")
        faster("linear10", 40, "10-step linear at least 40x faster than Metaflow")
        imp = self.floors.get('python -c "import flowdeck"')
        imp_wall = imp.wall if imp else None
        within("hello", imp_wall, 2.0, "the interpreter + import flowdeck",
               "hello within 2x of `python -c pass` plus the unavoidable imports")
        within("linear10", imp_wall, 2.0, "the interpreter + import flowdeck",
               "10-step linear within 2x of the interpreter plus the unavoidable imports")
        for case, what in (("array-fresh", "fresh data"), ("array-repeat", "repeated data")):
            within(case, self.wall(case, "floor"), 1.2, "np.save/np.load",
                   f"100 MB array, {what}: within 1.2x of np.save + np.load")
        for workload in CASES:
            mine = ours(workload.name, "flowdeck")
            peers = {t.label: ours(workload.name, t.name) for t in self.tools
                     if t.name not in ("flowdeck", "floor")}
            measured = {label: wall for label, wall in peers.items() if wall is not None}
            if mine is None:
                continue
            behind = [f"{label} {fmt_s(wall)}" for label, wall in measured.items()
                      if wall <= mine]
            text = f"ahead of every peer: {workload.label}"
            if not measured:
                goals.append(Goal(text, "no peer run", None))
            else:
                goals.append(Goal(text, f"{fmt_s(mine)}; " + (
                    f"behind {', '.join(behind)}" if behind
                    else f"next {fmt_s(min(measured.values()))}"), not behind))
        return goals

    def as_json(self, machine: Machine, args: argparse.Namespace) -> dict[str, object]:
        return {
            "command": " ".join(["python", "bench/bench_engine.py", *sys.argv[1:]]),
            "machine": asdict(machine),
            "repeat": args.repeat,
            "skipped_tools": self.skipped,
            "cases": {case: {tool: s.as_json() for tool, s in by_tool.items()}
                      for case, by_tool in self.cases.items()},
            "floors": {name: s.as_json() for name, s in self.floors.items()},
            "fork_floor_per_task_s": {label: v for v, label in self.fork_per_task().items()},
            "linearity": [{"case": c.name, "tasks": c.n, "wall_s": s.wall, "wall_per_task_s": s.wall / c.n,
                           "cpu_per_task_s": s.cpu / c.n, "peak_rss_bytes": s.peak_rss}
                          for c, s in self.per_task()],
            "rss_added_per_task_bytes": self.marginal_bytes(),
            "goals": [asdict(g) | {"verdict": g.verdict} for g in self.goals()],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--only", help=f"comma-separated groups: {', '.join(GROUPS)}")
    parser.add_argument("--tools", help="comma-separated tools (Flowdeck always runs): "
                        + ", ".join(t.name for t in TOOLS))
    parser.add_argument("--no-metaflow", action="store_true", help="skip Metaflow (slowest)")
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-task run")
    parser.add_argument("--json", metavar="OUT", type=Path, help="write every figure to OUT")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else set(GROUPS)
    unknown = only - set(GROUPS)
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(GROUPS)}")
    wanted = set(args.tools.split(",")) | {"flowdeck"} if args.tools else {t.name for t in TOOLS}
    if args.no_metaflow:
        wanted.discard("metaflow")
    if wanted - {t.name for t in TOOLS}:
        parser.error(f"--tools: unknown {', '.join(sorted(wanted - {t.name for t in TOOLS}))}")
    shown = [t for t in TOOLS if t.name in wanted]
    skipped = {t.name: t.missing() for t in shown if t.missing()}
    runnable = [t for t in shown if t.name not in skipped]
    report = Report(shown, skipped)
    machine = Machine.now()
    loads = [machine.load_before[0]]

    def say(text: str) -> None:  # progress on stderr; the tables alone on stdout
        print(text, file=sys.stderr, flush=True)

    say(f"{machine.describe()}\ntools: {', '.join(t.label for t in runnable)}"
        + "".join(f"; {t} {why}" for t, why in skipped.items()))
    failures: list[str] = []

    def attempt(name: str, measure: Callable[[], None]) -> None:
        """Run one group; a failure is reported at the end and the other groups still run."""
        try:
            measure()
        except BenchError as error:
            failures.append(f"{name}: {error}")
            say(f"{name}: FAILED (reported at the end)")
        loads.append(Machine.now().load_before[0])

    def floors() -> None:
        folder = Path(tempfile.mkdtemp(prefix="bench-floors-"))
        try:
            report.floors = interleave(floor_commands(folder), args.repeat)
        finally:
            keep_until_the_end(folder)
        say("floors: " + ", ".join(f"{k} {fmt_s(s.wall)}" for k, s in report.floors.items()))

    def case_of(case: Workload) -> Callable[[], None]:
        def measure() -> None:
            report.cases[case.name] = measure_case(case, runnable, args.repeat)
            say(f"{case.name}: " + ", ".join(f"{k} {fmt_s(s.wall)}"
                                             for k, s in report.cases[case.name].items()))
        return measure

    def large() -> None:
        """foreach 10,000 and a 1,000 in alternating rounds, Flowdeck alone, each in a new
        store every time; no warm-up (the 1,000-task case before has warmed the caches)."""
        flowdeck = next(t for t in runnable if t.name == "flowdeck")
        folder = Path(tempfile.mkdtemp(prefix="bench-linearity-"))
        try:
            commands = {}
            for case in (PAIRED, LARGE):
                command = flowdeck.command(case, folder / case.name)
                assert command is not None  # Flowdeck runs every workload
                commands[case.name] = command
            series = interleave(commands, min(args.repeat, 3), warmup=False)
        finally:
            keep_until_the_end(folder)
        report.paired, report.large = series[PAIRED.name], series[LARGE.name]
        say(f"{LARGE.name}: {fmt_s(report.large.wall)}, alternating with "
            f"{PAIRED.name}: {fmt_s(report.paired.wall)}")

    if "floors" in only:
        attempt("floors", floors)
    for case in CASES:
        if case.name in only or (case.name in ("foreach1000", "hello") and "linearity" in only):
            attempt(case.name, case_of(case))
    if "linearity" in only and not args.quick:
        attempt(LARGE.name, large)
    machine = machine.finished()
    loads.append((machine.load_after or machine.load_before)[0])
    remove_leftovers()  # every run is timed: now the folders may go
    print(f"## Engine benchmark\n\n`python bench/bench_engine.py {' '.join(sys.argv[1:])}`: "
          f"medians of {args.repeat} interleaved rounds (the 100 MB cases at least "
          f"{ARRAY_ROUNDS}) after a warm-up, whole processes.\n"
          f"{machine.describe()}; 1-minute load between cases {min(loads):.2f} to "
          f"{max(loads):.2f}.\n")
    if report.cases:
        print("Seconds (median wall, whole process):\n")
        print("\n".join(report.workload_table(ratio=False)))
        if len(report.tools) > 1:
            print("\nRatio = tool / Flowdeck (above 1 is slower than Flowdeck):\n")
            print("\n".join(report.workload_table(ratio=True)))
    if report.floors:
        print("\nFloors:\n")
        print("\n".join(report.floor_lines()))
    if report.per_task():
        print("\nPer task (wall and CPU divided by the foreach items; RSS is the top "
              "process's high-water mark, added per task against the previous row, the "
              "first against hello):\n")
        print("\n".join(report.linearity_lines()))
    print("\nGoals of issue 15 (task isolation is kept by the semantics tests, not here):\n")
    print("| goal | figure | verdict |\n|---|---|---|")
    for goal in report.goals():
        print(f"| {goal.goal} | {goal.figure} | {goal.verdict} |")
    if args.json:
        args.json.write_text(json.dumps(report.as_json(machine, args) | {"failures": failures},
                                        indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    for failure in failures:
        print(f"\nbenchmark group failed, {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
