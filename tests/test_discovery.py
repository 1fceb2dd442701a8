"""Flow discovery: every named case in tests/flows/discovery, skip rules, bad input, caching.

Everything runs on real files in a temporary folder; tricky inputs (NUL bytes,
a 3 MB file, symlink loops, unreadable files, FIFOs) are made at test time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import child_env
from discovery_helpers import CASES, copy_case, flow_source, keys, names

from flowdeck.discovery.catalog import (
    MAX_FILE_BYTES,
    CatalogSnapshot,
    FlowCatalog,
    entry_key,
    is_editor_dropping,
    scan_paths,
)


def scan(*roots: Path, **options) -> CatalogSnapshot:
    snapshot, _ = FlowCatalog(roots, **options).scan()
    return snapshot


def only_case(name: str, tmp_path: Path) -> tuple[Path, CatalogSnapshot]:
    path = copy_case(name, tmp_path / "flows")
    return path, scan(tmp_path / "flows")


# -- the named cases --------------------------------------------------------------

@pytest.mark.parametrize("name", ["empty.py", "only_comments.py", "flow_in_string.py",
                                  "fake_flowspec.py"])
def test_files_without_flows_yield_nothing_and_no_problem(name: str, tmp_path: Path) -> None:
    _, snapshot = only_case(name, tmp_path)
    assert snapshot.entries == ()
    assert snapshot.problems == ()
    assert snapshot.skipped == ()
    assert snapshot.files_seen == 1


def test_syntax_error_is_reported_with_line_and_column(tmp_path: Path) -> None:
    path, snapshot = only_case("syntax_error.py", tmp_path)
    assert snapshot.entries == ()
    problem = snapshot.problem(path)
    assert problem is not None
    (diag,) = problem.diagnostics
    assert (diag.code, diag.file, diag.line, diag.column) == ("syntax-error", str(path), 9, 28)
    assert "unmatched ')'" in diag.message and "line 9" in diag.message


def test_two_flows_in_one_file(tmp_path: Path) -> None:
    path, snapshot = only_case("two_flows.py", tmp_path)
    assert [(e.name, e.line, e.status) for e in snapshot.entries] == [
        ("FirstFlow", 5, "ok"), ("SecondFlow", 17, "ok")]
    assert [e.key for e in snapshot.entries] == [entry_key(str(path), "FirstFlow"),
                                                 entry_key(str(path), "SecondFlow")]
    assert snapshot.entries[1].steps == ["start", "middle", "end"]
    assert snapshot.entries[0].flow.doc == "The first of two flows in one file."


def test_flow_inheriting_from_a_flow(tmp_path: Path) -> None:
    _, snapshot = only_case("inherited_flow.py", tmp_path)
    base, child = snapshot.entries
    assert (base.name, child.name) == ("BaseFlow", "ChildFlow")
    assert base.steps == ["start", "end"]
    assert child.steps == ["start", "extra", "end"]
    assert child.ok and child.flow.graph["start"].out_funcs == ["extra"]
    assert child.flow.doc == "Adds a step between start and end."


BASE_MODULE = """import os
from flowdeck import FlowSpec, step

os._exit(3)  # never run: the module is read, not imported


class BaseFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.middle)

    @step
    def end(self):
        pass
"""
CHILD_FILE = """from base_steps import BaseFlow


class ChildFlow(BaseFlow):
    @step
    def middle(self):
        self.next(self.end)


if __name__ == "__main__":
    ChildFlow()
"""


def test_a_flow_inheriting_from_a_module_beside_it_follows_that_module(tmp_path: Path) -> None:
    """The child file never says FlowSpec (the prefilter used to skip it unread): it is
    listed with the base module's steps, and analysed again when only that module
    changes, although its own bytes did not."""
    (tmp_path / "base_steps.py").write_text(BASE_MODULE)
    child = tmp_path / "child_flow.py"
    child.write_text(CHILD_FILE.replace("@step", "@fd.step").replace(
        "from base_steps", "import flowdeck as fd\nfrom base_steps"))
    catalog = FlowCatalog([tmp_path])
    snapshot, _ = catalog.scan()
    entry = snapshot.entry(entry_key(str(child), "ChildFlow"))
    assert entry is not None and entry.ok, entry
    assert entry.steps == ["start", "middle", "end"]
    assert entry.flow.graph["start"].source_file == str(tmp_path / "base_steps.py")
    (tmp_path / "base_steps.py").write_text(BASE_MODULE.replace(
        "self.next(self.middle)", "self.x = 1\n        self.next(self.middle)"))
    old_hash = entry.flow.graph["start"].source_hash
    snapshot, diff = catalog.refresh([tmp_path / "base_steps.py"])
    entry = snapshot.entry(entry_key(str(child), "ChildFlow"))
    assert entry is not None and entry.flow.graph["start"].source_hash != old_hash
    assert entry.key in [e.key for e in diff.changed]
    # The base module does not run BaseFlow (no main block) and its lint finds no step
    # `middle`: listed as the base class of ChildFlow, not as a flow with errors.
    base = snapshot.entry(entry_key(str(tmp_path / "base_steps.py"), "BaseFlow"))
    assert base is not None and not base.ok and base.flow.diagnostics
    assert (base.is_base, base.base_of, base.status) == (True, ("ChildFlow",), "base")
    child.unlink()  # no flow inherits from it any more: its errors are its own again
    snapshot, diff = catalog.refresh([child])
    base = snapshot.entry(entry_key(str(tmp_path / "base_steps.py"), "BaseFlow"))
    assert base is not None and (base.is_base, base.status) == (False, "error")
    assert base.key in [e.key for e in diff.changed]


def test_a_base_module_that_appears_later_or_outside_the_roots_reaches_its_child(
        tmp_path: Path) -> None:
    """The child is analysed again when the module it imports its base from appears (it
    was missing), and when that module changes outside the catalog's roots (a file root)."""
    child = tmp_path / "child_flow.py"
    child.write_text(CHILD_FILE.replace("from base_steps", "from flowdeck import step\n"
                                        "from base_steps"))
    catalog = FlowCatalog([tmp_path])
    snapshot, _ = catalog.scan()
    assert names(snapshot.entries) == []  # no base module: no flow yet, as Python says
    (tmp_path / "base_steps.py").write_text(BASE_MODULE)
    snapshot, _ = catalog.refresh([tmp_path / "base_steps.py"])
    assert names(snapshot.entries) == ["BaseFlow", "ChildFlow"]
    alone = FlowCatalog([child])  # only the file: its base module is outside the roots
    entry = alone.scan()[0].entry(entry_key(str(child), "ChildFlow"))
    assert entry is not None and entry.ok
    (tmp_path / "base_steps.py").write_text(BASE_MODULE.replace("self.next(self.middle)",
                                                                "self.next(self.end)"))
    entry = alone.scan()[0].entry(entry_key(str(child), "ChildFlow"))
    assert entry is not None and [d.code for d in entry.diagnostics] == ["unreachable"]


def test_a_child_flow_without_steps_and_a_shadowed_base(tmp_path: Path) -> None:
    """A flow that only sets a parameter on a base from another module is listed (the
    prefilter skipped it); a class of the file named like the imported base shadows it,
    so the class deriving from that name is no flow (as Python sees it)."""
    (tmp_path / "base_steps.py").write_text(BASE_MODULE)
    (tmp_path / "tuned.py").write_text("from base_steps import BaseFlow\nfrom flowdeck import "
                                       "Parameter\n\n\nclass TunedFlow(BaseFlow):\n"
                                       "    alpha = Parameter('alpha', default=10)\n")
    (tmp_path / "shadow.py").write_text("from base_steps import BaseFlow\n\n\nclass BaseFlow:"
                                        "\n    pass\n\n\nclass ShadowFlow(BaseFlow):\n"
                                        "    @step\n    def start(self):\n        pass\n")
    snapshot = scan(tmp_path)
    assert names(snapshot.entries) == ["BaseFlow", "TunedFlow"]
    tuned = snapshot.entry(entry_key(str(tmp_path / "tuned.py"), "TunedFlow"))
    assert tuned is not None and [p.name for p in tuned.flow.parameters] == ["alpha"]


def test_a_flow_whose_base_is_renamed_on_import_is_not_prefiltered(tmp_path: Path) -> None:
    """`Helper` derives from BaseFlow (as `B`): a flow, though its file never says FlowSpec,
    names no `...Flow` and has no step. The prefilter hid it; it must find what the full
    analysis finds. A class of another module that cannot lead to FlowSpec is skipped."""
    (tmp_path / "util.py").write_text("from base_steps import BaseFlow as B\n\n\n"
                                      "class Helper(B):\n    pass\n")
    (tmp_path / "other.py").write_text("from helpers import Base\n\n\nclass Thing(Base):\n"
                                       "    pass\n")
    (tmp_path / "helpers.py").write_text("import json\n\n\nclass Base(json.JSONEncoder):\n"
                                         "    pass\n")
    (tmp_path / "base_steps.py").write_text(BASE_MODULE)
    assert names(scan(tmp_path).entries) == ["BaseFlow", "Helper"]
    assert names(scan(tmp_path, prefilter=False).entries) == ["BaseFlow", "Helper"]


def test_dynamic_next_is_reported_as_not_statically_known(tmp_path: Path) -> None:
    path, snapshot = only_case("dynamic_next.py", tmp_path)
    (entry,) = snapshot.entries
    assert entry.status == "error"
    (diag,) = entry.diagnostics
    assert (diag.code, diag.line, diag.file) == ("dynamic-next", 11, str(path))
    assert "not statically known" in diag.message


@pytest.mark.parametrize("name,flow,engine", [
    ("alias_import.py", "AliasFlow", "flowdeck"),
    ("module_alias.py", "ModuleAliasFlow", "flowdeck"),
    ("metaflow_module.py", "PlainMetaflowFlow", "metaflow"),
    ("metaflow_star.py", "StarFlow", "metaflow"),
])
def test_every_spelling_of_the_base_class(name: str, flow: str, engine: str,
                                          tmp_path: Path) -> None:
    _, snapshot = only_case(name, tmp_path)
    (entry,) = snapshot.entries
    assert (entry.name, entry.engine, entry.status, entry.steps) == (
        flow, engine, "ok", ["start", "end"])


def test_flow_details_steps_graph_and_parameters(tmp_path: Path) -> None:
    path, snapshot = only_case("parameters.py", tmp_path)
    (entry,) = snapshot.entries
    data = entry.as_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON for tools
    assert (data["name"], data["file"], data["line"], data["doc"], data["engine"]) == (
        "ParamFlow", str(path), 7, "Trains with parameters.", "flowdeck")
    assert data["steps"] == [
        {"name": "start", "line": 16, "doc": "Load the data.", "type": "start"},
        {"name": "train", "line": 21, "doc": "Fit the model.", "type": "linear"},
        {"name": "end", "line": 26, "doc": "Report.", "type": "end"}]
    assert data["graph"]["graph_structure"] == ["start", "train", "end"]
    assert data["graph"]["graph"]["train"]["next"] == ["end"]
    params = {p["name"]: p for p in data["parameters"]}
    assert (params["alpha"]["default"], params["alpha"]["type"], params["alpha"]["help"],
            params["alpha"]["required"]) == (0.01, "float", "Learning rate.", False)
    assert (params["epochs"]["default"], params["epochs"]["type"]) == (10, "int")
    assert (params["run-name"]["required"], params["run-name"]["has_default"],
            params["run-name"]["help"]) == (True, False, "What to call the run.")
    # Not a literal: no value, but the source text is kept.
    assert (params["scale"]["default"], params["scale"]["default_source"]) == (
        None, "DEFAULT_ALPHA * 2")
    assert data["diagnostics"] == [] and data["status"] == "ok" and data["stale"] is False


def test_no_user_code_runs_marker_and_exit(tmp_path: Path) -> None:
    """The file's top level writes a marker and calls os._exit: neither happens."""
    path, snapshot = only_case("side_effects.py", tmp_path)
    assert names(snapshot.entries) == ["SideEffectFlow"]
    assert not list(tmp_path.rglob("MARKER_*"))
    # Still alive, and again through the command line in a real process.
    result = subprocess.run([sys.executable, "-m", "flowdeck.cli.listing", str(path)],
                            env=child_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "SideEffectFlow" in result.stdout
    assert not list(tmp_path.rglob("MARKER_*"))


def test_every_case_file_is_covered() -> None:
    """Each named case has an assertion in this file (keeps the corpus honest)."""
    here = Path(__file__).read_text()
    missing = [p.name for p in CASES.glob("*.py") if f'"{p.name}"' not in here]
    assert missing == []


# -- bad bytes and odd files --------------------------------------------------------

def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin.py"
    path.write_bytes(b"from flowdeck import FlowSpec\n# caf\xe9\nclass F(FlowSpec):\n    pass\n")
    (diag,) = scan(tmp_path).problem(path).diagnostics
    assert (diag.code, diag.line) == ("encoding", 2)
    assert "UTF-8" in diag.message


def test_declared_encoding_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "latin.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\nfrom flowdeck import FlowSpec, step\n"
                     b"class Caf\xe9Flow(FlowSpec):\n    @step\n    def start(self):\n"
                     b"        self.next(self.end)\n    @step\n    def end(self):\n        pass\n")
    assert names(scan(tmp_path).entries) == ["CaféFlow"]


def test_nul_byte(tmp_path: Path) -> None:
    path = tmp_path / "nul.py"
    path.write_bytes(flow_source().encode() + b"\n\n# x\x00y\n")
    snapshot = scan(tmp_path)
    assert snapshot.entries == ()
    (diag,) = snapshot.problem(path).diagnostics
    assert diag.code == "binary-file"
    assert diag.line == flow_source().count("\n") + 3


def test_three_megabyte_file_is_skipped_with_reason(tmp_path: Path) -> None:
    path = tmp_path / "huge.py"
    body = flow_source("HugeFlow") + "\n" + "# padding line for a big generated file\n" * 80_000
    path.write_text(body)
    assert path.stat().st_size > 3_000_000 > MAX_FILE_BYTES
    reads: list[str] = []
    snapshot = scan(tmp_path, before_read=reads.append)
    assert snapshot.entries == ()
    skipped = snapshot.skip_reason(path)
    assert skipped is not None and skipped.code == "too-large"
    assert "3." in skipped.reason and "MB" in skipped.reason
    assert reads == []  # judged by its size, never read


def test_fifo_and_folder_named_like_sources_are_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")  # opening it for reading would block forever
    (tmp_path / "package.py").mkdir()
    (tmp_path / "package.py" / "inner.py").write_text(flow_source("InnerFlow"))
    snapshot = scan(tmp_path)
    assert names(snapshot.entries) == ["InnerFlow"]
    assert snapshot.skip_reason(tmp_path / "pipe.py").code == "not-regular"
    assert "FIFO" in snapshot.skip_reason(tmp_path / "pipe.py").reason


def test_fifo_as_an_explicit_path_is_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")
    snapshot = scan(tmp_path / "pipe.py")
    assert snapshot.skip_reason(tmp_path / "pipe.py").code == "not-regular"


DROP_DAC = r"""
import ctypes, sys
# Drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH so that even root gets EACCES.
libc = ctypes.CDLL(None, use_errno=True)
class Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
class Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]
header, data = Header(0x20080522, 0), (Data * 2)()
if libc.capget(ctypes.byref(header), data) != 0:
    raise OSError(ctypes.get_errno(), "capget")
for bit in (1, 2):
    data[0].effective &= ~(1 << bit)
    data[0].permitted &= ~(1 << bit)
if libc.capset(ctypes.byref(header), data) != 0:
    raise OSError(ctypes.get_errno(), "capset")
try:
    open(sys.argv[-1] + "/secret.py").close()
    sys.exit("still able to read the unreadable file")
except PermissionError:
    pass
from flowdeck.cli.listing import list_main
sys.exit(list_main(sys.argv[1:]))
"""


def test_unreadable_file_permission_denied(tmp_path: Path) -> None:
    """A file we may not read is skipped with the reason, and the rest is still listed.

    Root reads anything, so as root the scan runs in a child process that has
    dropped the capabilities that bypass file permissions: the open really
    fails with EACCES, as it does for a normal user.
    """
    folder = tmp_path / "flows"
    folder.mkdir()
    secret = folder / "secret.py"
    secret.write_text(flow_source("SecretFlow"))
    secret.chmod(0)
    (folder / "fine.py").write_text(flow_source("FineFlow"))
    if os.geteuid() == 0:
        result = subprocess.run([sys.executable, "-c", DROP_DAC, "--json", str(folder)],
                                env=child_env(), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
    else:
        data = scan(folder).as_dict()
    assert [f["name"] for f in data["flows"]] == ["FineFlow"]
    (skipped,) = data["skipped"]
    assert (skipped["path"], skipped["code"]) == (str(secret), "unreadable")
    assert "Permission denied" in skipped["reason"] and "chmod" in skipped["reason"]


def test_symlink_loop_between_folders_terminates(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "fa.py").write_text(flow_source("AFlow"))
    (b / "fb.py").write_text(flow_source("BFlow"))
    (a / "to_b").symlink_to(b)
    (b / "to_a").symlink_to(a)
    (a / "self").symlink_to(a)
    snapshot = scan(tmp_path)
    assert [(e.name, e.file) for e in snapshot.entries] == [
        ("AFlow", str(a / "fa.py")), ("BFlow", str(b / "fb.py"))]  # real paths, once each
    codes = {Path(s.path).name: s.code for s in snapshot.skipped}
    assert codes == {"to_b": "already-scanned", "to_a": "already-scanned",
                     "self": "symlink-loop"}


def test_symlinked_folder_outside_the_root_is_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.py").write_text(flow_source("OutsideFlow"))
    root = tmp_path / "root"
    root.mkdir()
    (root / "linked").symlink_to(outside)
    snapshot = scan(root)
    assert [(e.name, e.file) for e in snapshot.entries] == [
        ("OutsideFlow", str(root / "linked" / "x.py"))]


def test_dangling_and_self_looping_symlinks(tmp_path: Path) -> None:
    (tmp_path / "dangling.py").symlink_to(tmp_path / "gone.py")
    (tmp_path / "loop.py").symlink_to(tmp_path / "loop.py")
    (tmp_path / "ok.py").write_text(flow_source("OkFlow"))
    (tmp_path / "alias.py").symlink_to(tmp_path / "ok.py")
    snapshot = scan(tmp_path)
    assert names(snapshot.entries) == ["OkFlow", "OkFlow"]  # a file symlink is a path too
    skipped = {Path(s.path).name: s for s in snapshot.skipped}
    assert skipped["dangling.py"].code == "dangling-symlink"
    assert "gone.py" in skipped["dangling.py"].reason
    assert skipped["loop.py"].code == "symlink-loop"


def test_file_deleting_itself_mid_scan(tmp_path: Path) -> None:
    """Listed, then gone before it is read: not an error, not a flow, not skipped."""
    (tmp_path / "stays.py").write_text(flow_source("StaysFlow"))
    doomed = tmp_path / "doomed.py"
    doomed.write_text(flow_source("DoomedFlow"))

    def delete_first(path: str) -> None:
        if path == str(doomed) and doomed.exists():
            doomed.unlink()

    snapshot = scan(tmp_path, before_read=delete_first)
    assert names(snapshot.entries) == ["StaysFlow"]
    assert snapshot.skipped == () and snapshot.problems == ()


def test_file_replaced_by_a_fifo_mid_scan(tmp_path: Path) -> None:
    target = tmp_path / "swap.py"
    target.write_text(flow_source("SwapFlow"))

    def swap(path: str) -> None:
        if path == str(target) and target.is_file():
            target.unlink()
            os.mkfifo(target)

    snapshot = scan(tmp_path, before_read=swap)  # must not block on the FIFO
    assert snapshot.entries == ()
    assert snapshot.skip_reason(target).code == "not-regular"


def test_scanning_while_files_come_and_go_never_raises(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"keep{i}.py").write_text(flow_source(f"Keep{i}Flow"))
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            path = tmp_path / f"churn{n % 7}.py"
            if path.exists():
                path.unlink()
            else:
                path.write_text(flow_source(f"Churn{n}Flow"))
            sub = tmp_path / f"dir{n % 3}"
            if sub.exists():
                for child in sub.iterdir():
                    child.unlink()
                sub.rmdir()
            else:
                sub.mkdir()
                (sub / "f.py").write_text(flow_source(f"Sub{n}Flow"))
            n += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        catalog = FlowCatalog([tmp_path])
        for _ in range(40):
            snapshot, _ = catalog.scan()
            assert sum(1 for e in snapshot.entries if e.name.startswith("Keep")) == 30
            catalog.refresh([tmp_path / "churn1.py", tmp_path / "dir1"])
    finally:
        stop.set()
        worker.join()


def test_prefilter_does_not_hide_a_non_ascii_spelling(tmp_path: Path) -> None:
    """Python folds identifiers with NFKC: `ＦｌｏｗＳｐｅｃ` is `FlowSpec`."""
    source = flow_source("WideFlow").replace("FlowSpec", "ＦｌｏｗＳｐｅｃ")
    (tmp_path / "wide.py").write_text(source, encoding="utf-8")
    assert names(scan(tmp_path).entries) == ["WideFlow"]


def test_files_that_never_say_flowspec_are_not_parsed(tmp_path: Path) -> None:
    (tmp_path / "broken_helper.py").write_text("def oops(:\n")
    assert scan(tmp_path).problems == ()  # not a flow source: its syntax is not our business
    # ...but named explicitly it is analysed and its error shown.
    (diag,) = scan(tmp_path / "broken_helper.py").problems[0].diagnostics
    assert diag.code == "syntax-error"


# -- what is not a flow source ------------------------------------------------------------

def test_skip_rules(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text(flow_source("GoodFlow"))
    hidden_places = [".flowdeck/runs/x.py", ".metaflow/x.py", "__pycache__/x.py", ".git/x.py",
                     "node_modules/pkg/x.py", ".hidden/x.py", "sub/.cache/x.py",
                     "venv/lib/site.py", "env2/deep/er/x.py"]
    for rel in hidden_places:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(flow_source("HiddenFlow"))
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / "env2" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    droppings = [".#good.py", "good.py~", ".good.py.swp", "4913", "good.py___jb_tmp___",
                 "good.py___jb_old___", ".goutputstream-AB12CD", ".sublime123.tmp",
                 ".subl5f.tmp", "notes.txt", ".hidden.py"]
    for name in droppings:
        (tmp_path / name).write_text(flow_source("DroppingFlow"))
    snapshot = scan(tmp_path)
    assert [(e.name, e.file) for e in snapshot.entries] == [("GoodFlow", str(good))]
    assert snapshot.skipped == () and snapshot.files_seen == 1


@pytest.mark.parametrize("name,expected", [
    (".#flow.py", True), ("flow.py~", True), (".flow.py.swp", True), ("4913", True),
    ("flow.py___jb_tmp___", True), ("flow.py___jb_old___", True),
    (".goutputstream-XYZ123", True), (".subl3a2.tmp", True), ("flow.py", False),
    ("subl.py", False), ("flow4913.py", False),
])
def test_editor_droppings(name: str, expected: bool) -> None:
    assert is_editor_dropping(name) is expected


def test_a_venv_as_the_root_itself_is_scanned(tmp_path: Path) -> None:
    """Skipping applies to what is found below a root, not to what the user named."""
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / "flow.py").write_text(flow_source("InVenvFlow"))
    assert names(scan(tmp_path).entries) == ["InVenvFlow"]


def test_overlapping_roots_list_each_flow_once(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.py").write_text(flow_source("OnceFlow"))
    snapshot = scan(tmp_path / "sub", tmp_path, tmp_path / "sub" / "f.py")
    assert names(snapshot.entries) == ["OnceFlow"]


def test_missing_root_is_reported(tmp_path: Path) -> None:
    snapshot = scan(tmp_path / "nope", tmp_path)
    assert snapshot.missing_roots == (str(tmp_path / "nope"),)


# -- incremental -------------------------------------------------------------------------------

def test_rescan_reads_only_what_changed(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}.py").write_text(flow_source(f"F{i}Flow"))
    reads: list[str] = []
    catalog = FlowCatalog([tmp_path], before_read=reads.append)
    _, diff = catalog.scan()
    assert names(diff.added) == [f"F{i}Flow" for i in range(5)]
    _age(tmp_path)  # files written "just now" are re-hashed once (racy mtime)
    catalog.scan()
    reads.clear()
    _, diff = catalog.scan()
    assert reads == [] and diff.empty
    (tmp_path / "f3.py").write_text(flow_source("F3Flow", note="edited"))
    _, diff = catalog.scan()
    assert reads == [str(tmp_path / "f3.py")]
    assert names(diff.changed) == ["F3Flow"] and not diff.added and not diff.removed


def _age(folder: Path, seconds: int = 60) -> None:
    for path in folder.rglob("*.py"):
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_saving_unchanged_content_is_not_a_change(tmp_path: Path) -> None:
    path = tmp_path / "f.py"
    path.write_text(flow_source("SameFlow"))
    catalog = FlowCatalog([tmp_path])
    first, _ = catalog.scan()
    path.write_text(flow_source("SameFlow"))  # new mtime, same bytes
    os.utime(path, ns=(0, 10**18))
    snapshot, diff = catalog.scan()
    assert diff.empty
    assert snapshot.entries[0] is first.entries[0]  # not even re-analysed


def test_same_size_same_mtime_edit_is_still_seen(tmp_path: Path) -> None:
    """An edit that keeps size and mtime (say, restored with `touch -r`) changes ctime/hash."""
    path = tmp_path / "f.py"
    path.write_text(flow_source("TieFlow", note="aaaa"))
    catalog = FlowCatalog([tmp_path])
    catalog.scan()
    st = path.stat()
    path.write_text(flow_source("TieFlow", note="bbbb"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    _, diff = catalog.scan()
    assert names(diff.changed) == ["TieFlow"]


def test_diff_added_changed_removed_and_moves(tmp_path: Path) -> None:
    catalog = FlowCatalog([tmp_path])
    a = tmp_path / "a.py"
    a.write_text(flow_source("AFlow"))
    _, diff = catalog.scan()
    assert names(diff.added) == ["AFlow"]
    a.rename(tmp_path / "b.py")
    _, diff = catalog.refresh([a, tmp_path / "b.py"])
    assert keys(diff.removed) == [entry_key(str(a), "AFlow")]
    assert keys(diff.added) == [entry_key(str(tmp_path / "b.py"), "AFlow")]
    (tmp_path / "b.py").unlink()
    _, diff = catalog.refresh([tmp_path / "b.py"])
    assert names(diff.removed) == ["AFlow"] and catalog.snapshot.entries == ()


def test_refresh_of_a_folder_moved_in_and_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "pkg"
    outside.mkdir()
    (outside / "one.py").write_text(flow_source("OneFlow"))
    (outside / "two.py").write_text(flow_source("TwoFlow"))
    catalog = FlowCatalog([root])
    catalog.scan()
    outside.rename(root / "pkg")
    _, diff = catalog.refresh([root / "pkg"])
    assert names(diff.added) == ["OneFlow", "TwoFlow"]
    (root / "pkg").rename(tmp_path / "pkg")
    _, diff = catalog.refresh([root / "pkg"])
    assert names(diff.removed) == ["OneFlow", "TwoFlow"]


def test_refresh_ignores_paths_outside_roots_and_skipped_places(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "x.py").write_text(flow_source("GitFlow"))
    (tmp_path / "elsewhere.py").write_text(flow_source("ElsewhereFlow"))
    catalog = FlowCatalog([root])
    catalog.scan()
    _, diff = catalog.refresh([root / ".git" / "x.py", tmp_path / "elsewhere.py",
                               root / ".git"])
    assert diff.empty


def test_syntax_error_mid_edit_keeps_the_flow_as_stale(tmp_path: Path) -> None:
    """While a person types, the row stays (with the error) instead of vanishing."""
    path = tmp_path / "f.py"
    path.write_text(flow_source("EditFlow"))
    catalog = FlowCatalog([tmp_path])
    catalog.scan()
    path.write_text(flow_source("EditFlow").replace("def end(self):", "def end(self:"))
    snapshot, diff = catalog.scan()
    (entry,) = diff.changed
    assert entry.stale and entry.status == "error" and not diff.removed
    (diag,) = entry.diagnostics
    assert diag.code == "syntax-error" and diag.line > 1 and diag.column > 0
    assert diff.problems_changed and snapshot.problem(path) is not None
    path.write_text(flow_source("EditFlow", note="fixed"))
    snapshot, diff = catalog.scan()
    (entry,) = diff.changed
    assert not entry.stale and entry.ok and snapshot.problems == ()


def test_growing_over_the_limit_is_a_removal_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "f.py"
    path.write_text(flow_source("GrowFlow"))
    catalog = FlowCatalog([tmp_path], max_bytes=4096)
    catalog.scan()
    path.write_text(flow_source("GrowFlow") + "#" * 5000)
    snapshot, diff = catalog.refresh([path])
    assert names(diff.removed) == ["GrowFlow"] and diff.skipped_changed
    assert snapshot.skip_reason(path).code == "too-large"


def test_snapshot_and_diff_serialise(tmp_path: Path) -> None:
    copy_case("two_flows.py", tmp_path)
    copy_case("syntax_error.py", tmp_path)
    catalog = FlowCatalog([tmp_path])
    snapshot, diff = catalog.scan()
    assert json.loads(json.dumps(snapshot.as_dict()))["flows"][0]["name"] == "FirstFlow"
    assert [f["name"] for f in json.loads(json.dumps(diff.as_dict()))["added"]] == [
        "FirstFlow", "SecondFlow"]
    assert scan_paths([tmp_path]).as_dict() == snapshot.as_dict()
