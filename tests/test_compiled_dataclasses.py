"""`flowdeck.compiled_dataclasses`: the standard `dataclass`, its generated methods' code
kept in a file like bytecode. Classes made from the file's code behave as the standard
library's; a damaged file, a read-only folder and PYTHONDONTWRITEBYTECODE are honoured."""

from __future__ import annotations

import dataclasses
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowdeck import compiled_dataclasses as cd

DEFINITION = '''
from dataclasses import field
from flowdeck.compiled_dataclasses import dataclass

@dataclass(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: list = field(default_factory=list, compare=False)

@dataclass(order=True)
class Version:
    major: int
    minor: int = 0
'''


def _define(cache: cd._Cache, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setattr(cd, "_CACHE", cache)
    namespace: dict[str, object] = {"__name__": "defined_here"}
    sys.modules["defined_here"] = type(sys)("defined_here")
    try:
        exec(DEFINITION, namespace)
    finally:
        del sys.modules["defined_here"]
    return namespace


def _behaves_as_the_standard_library(namespace: dict[str, object]) -> None:
    point, version = namespace["Point"], namespace["Version"]
    assert dataclasses.is_dataclass(point)
    p = point(1)  # type: ignore[operator]
    assert (p.x, p.y, p.tags) == (1, 0, [])
    assert p == point(1, 0, [])  # type: ignore[operator]
    assert hash(p) != hash(point(2))  # type: ignore[operator]
    assert repr(p) == "Point(x=1, y=0, tags=[])"
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 5
    assert point(1).tags is not point(1).tags  # type: ignore[operator]
    assert version(1, 2) < version(1, 3)  # type: ignore[operator]
    assert [f.name for f in dataclasses.fields(version)] == ["major", "minor"]  # type: ignore[arg-type]
    standard: dict[str, object] = {"__name__": "standard"}
    sys.modules["standard"] = type(sys)("standard")
    try:
        exec(DEFINITION.replace("from flowdeck.compiled_dataclasses import dataclass",
                                "from dataclasses import dataclass"), standard)
    finally:
        del sys.modules["standard"]
    for name in ("Point", "Version"):  # the same signatures, annotations included
        ours, theirs = namespace[name], standard[name]
        assert inspect.signature(ours) == inspect.signature(theirs)  # type: ignore[arg-type]
        assert ours.__init__.__annotations__ == theirs.__init__.__annotations__  # type: ignore[misc]


def test_methods_compiled_once_come_back_from_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = str(tmp_path / "__pycache__" / "compiled_dataclasses.test.marshal")
    first = cd._Cache(path)
    _behaves_as_the_standard_library(_define(first, monkeypatch))
    assert first.new and first.used  # compiled here
    first.write()
    assert os.path.exists(path)

    second = cd._Cache(path)
    assert set(second.stored) == set(first.used)
    _behaves_as_the_standard_library(_define(second, monkeypatch))
    assert not second.new  # nothing compiled: every method's code came from the file


def test_a_changed_class_is_compiled_again(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = str(tmp_path / "cache.marshal")
    cache = cd._Cache(path)
    cache.code("def __create_fn__():\n def f(self):\n  return 1\n return f")
    cache.write()
    again = cd._Cache(path)
    again.code("def __create_fn__():\n def f(self):\n  return 2\n return f")
    assert again.new


@pytest.mark.parametrize("content", [b"", b"not marshal at all", b"\x00" * 64])
def test_a_damaged_file_is_ignored(tmp_path, monkeypatch, content):
    path = tmp_path / "cache.marshal"
    path.write_bytes(content)
    cache = cd._Cache(str(path))
    assert cache.stored == {}
    _behaves_as_the_standard_library(_define(cache, monkeypatch))


def test_a_file_of_another_shape_is_ignored(tmp_path):
    import marshal
    path = tmp_path / "cache.marshal"
    path.write_bytes(marshal.dumps((cd._FORMAT, cd.MAGIC_NUMBER, {"source": "not code", 3: b"x"})))
    assert cd._Cache(str(path)).stored == {}


def test_nothing_is_written_when_python_writes_no_bytecode(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    path = tmp_path / "cache.marshal"
    cache = cd._Cache(str(path))
    _define(cache, monkeypatch)
    cache.write()
    assert not path.exists()


def test_a_folder_it_cannot_write_is_left_alone(tmp_path, monkeypatch):
    """A place where the file cannot go (here a file where its folder should be, which
    stops root too): nothing written, nothing raised, the classes still work."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    blocker = tmp_path / "__pycache__"
    blocker.write_text("a file, not a folder")
    cache = cd._Cache(str(blocker / "cache.marshal"))
    _behaves_as_the_standard_library(_define(cache, monkeypatch))
    cache.write()
    assert blocker.read_text() == "a file, not a folder"
    assert list(tmp_path.iterdir()) == [blocker]


def test_a_fresh_interpreter_writes_the_file_and_the_next_one_compiles_nothing(tmp_path):
    """Whole processes: a copy of the module in a package of its own, so the test writes
    beside that copy and not into the installed package."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = Path(cd.__file__).read_text()
    (package / "compiled_dataclasses.py").write_text(source)
    probe = DEFINITION.replace("flowdeck.compiled_dataclasses", "pkg.compiled_dataclasses") + (
        "import pkg.compiled_dataclasses as cd\n"
        "print('compiled' if cd._cache().new else 'from the file')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    runs = [subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                           text=True, timeout=60) for _ in range(2)]
    assert [r.stdout.strip() for r in runs] == ["compiled", "from the file"], \
        [r.stderr for r in runs]
    assert len(list((package / "__pycache__").glob("compiled_dataclasses.*.marshal"))) == 1


def _bytes_marshal_refuses_with_system_error() -> bytes:
    """Damaged marshalled code of the kind that makes `marshal.loads` raise SystemError (a
    code object with bad fields), found by changing one byte of a good one, as a bad disk
    sector or a crash could."""
    import marshal
    good = marshal.dumps(compile("def f(): pass", "<s>", "exec"))
    for place in range(len(good)):  # every one-byte change, first place first
        for value in range(256):
            data = bytearray(good)
            data[place] = value
            try:
                marshal.loads(bytes(data))
            except SystemError:
                return bytes(data)
            except Exception:  # noqa: BLE001 - the ordinary damage, already ignored
                continue
    raise AssertionError("no damaged code that makes marshal raise SystemError was found")


def test_a_file_that_makes_marshal_raise_system_error_is_ignored(tmp_path, monkeypatch):
    path = tmp_path / "cache.marshal"
    path.write_bytes(_bytes_marshal_refuses_with_system_error())
    cache = cd._Cache(str(path))
    assert cache.stored == {}
    _behaves_as_the_standard_library(_define(cache, monkeypatch))


METHOD = "def __create_fn__():\n def f(self):\n  return 1\n return f"


@pytest.mark.parametrize("entry", ["damaged", "not code"])
def test_a_damaged_method_in_a_sound_file_is_compiled_again(tmp_path, monkeypatch, entry):
    """Each method's code is decoded when a class needs it: a damaged one (SystemError
    from marshal, or a value that is no code) is compiled from its source instead, and
    the file written next holds the good code in its place."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    import marshal
    raw = _bytes_marshal_refuses_with_system_error() if entry == "damaged" else \
        marshal.dumps("text")
    path = tmp_path / "cache.marshal"
    path.write_bytes(marshal.dumps((cd._FORMAT, cd.MAGIC_NUMBER, {METHOD: raw})))
    cache = cd._Cache(str(path))
    assert set(cache.stored) == {METHOD}
    namespace: dict[str, object] = {}
    exec(cache.code(METHOD), namespace)
    assert cache.new  # compiled here, to be written again
    assert namespace["__create_fn__"]()(None) == 1  # type: ignore[operator]
    assert cache.write()
    mended = cd._Cache(str(path))
    assert isinstance(mended._stored_code(METHOD), type(compile("", "", "exec")))


def test_a_file_of_another_bytecode_is_ignored(tmp_path):
    import marshal
    path = tmp_path / "cache.marshal"
    code = compile("def f(): pass", "<s>", "exec")
    path.write_bytes(marshal.dumps((cd._FORMAT, b"\x00\x00\r\n", {"def f(): pass": code})))
    assert cd._Cache(str(path)).stored == {}


def test_another_librarys_patch_of_dataclasses_survives(monkeypatch):
    def their_create_fn(*args, **kwargs):
        return original(*args, **kwargs)

    original = dataclasses._create_fn  # type: ignore[attr-defined]
    monkeypatch.setattr(dataclasses, "_create_fn", their_create_fn)

    @cd.dataclass
    class Made:
        x: int

    assert Made(1).x == 1
    assert dataclasses._create_fn is their_create_fn  # type: ignore[attr-defined]


def test_another_librarys_exec_in_dataclasses_survives(monkeypatch):
    seen: list[str] = []

    def their_exec(source, globals=None, locals=None):
        seen.append(source if isinstance(source, str) else "code")
        exec(source, globals, locals)

    monkeypatch.setattr(dataclasses, "exec", their_exec, raising=False)

    @cd.dataclass
    class Made:
        x: int

    assert Made(1).x == 1
    assert dataclasses.exec is their_exec  # type: ignore[attr-defined]


def test_the_dataclasses_module_is_left_as_it_was():
    @cd.dataclass(frozen=True)
    class Made:
        x: int

    assert Made(1) == Made(1)
    assert "exec" not in vars(dataclasses)


FORK_WHILE_MAKING = '''
import os, threading, time
import flowdeck.compiled_dataclasses as cd

entered = threading.Event()

class SlowDefault:  # holds the class's making (and the lock) open for a while
    def __get__(self, obj, owner):
        entered.set()
        time.sleep(1)
        return 0

def make_in_thread():
    @cd.dataclass
    class Slow:
        x: int = SlowDefault()

threading.Thread(target=make_in_thread).start()
entered.wait()
pid = os.fork()
if pid == 0:
    @cd.dataclass
    class InChild:
        y: int
    print("child made its dataclass", InChild(2))
    os._exit(0)
os.waitpid(pid, 0)
'''


def test_a_child_forked_while_a_class_is_being_made_can_make_its_own():
    """The lock the swap holds is made anew in a forked child (a task is a fork)."""
    done = subprocess.run([sys.executable, "-c", FORK_WHILE_MAKING], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "child made its dataclass InChild(y=2)" in done.stdout


def test_the_run_paths_dataclasses_have_docstrings_of_their_own():
    """A dataclass without a docstring gets one built from `inspect.signature` as it is made:
    about 0.3 ms each at every `python flow.py` start (eight such classes on a run's import
    path cost 2.2 ms). Every class `python flow.py run` imports has its own."""
    code = ("import sys, dataclasses, flowdeck.engine.script_cli\n"
            "for name, module in list(sys.modules.items()):\n"
            "    if not name.startswith('flowdeck'):\n"
            "        continue\n"
            "    for value in list(vars(module).values()):\n"
            "        if isinstance(value, type) and dataclasses.is_dataclass(value) and \\\n"
            "                value.__module__ == name and \\\n"
            "                (value.__doc__ or '').startswith(value.__name__ + '('):\n"
            "            print(f'{name}.{value.__qualname__}')\n")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split()
    assert found == []


def _core_copy(tmp_path: Path) -> Path:
    """A fresh install of the core (no bytecode, no kept methods) to precompile."""
    import shutil

    from conftest import CORE
    shutil.copytree(CORE / "flowdeck", tmp_path / "core" / "flowdeck",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "core"


def _in(core: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(core), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, cwd=core)


PRECOMPILE = "from flowdeck.cli.main import main; raise SystemExit(main(['precompile']))"


def test_precompile_lets_a_flow_start_compile_nothing_under_dontwritebytecode(tmp_path):
    """`flowdeck precompile` writes the bytecode and the dataclass methods that no process
    may keep under PYTHONDONTWRITEBYTECODE; a flow's start then compiles no method."""
    core = _core_copy(tmp_path)
    started = ("import flowdeck.engine.script_cli, flowdeck.compiled_dataclasses as c; "
               "print(c._cache().new, len(c._cache().stored))")
    before = _in(core, started)
    assert before.stdout.split() == ["True", "0"], before.stderr  # compiled every method
    done = _in(core, PRECOMPILE)
    assert done.returncode == 0, done.stderr
    assert "dataclass methods" in done.stdout
    assert list((core / "flowdeck" / "engine" / "__pycache__").glob("runtime.*.pyc"))
    new, stored = _in(core, started).stdout.split()
    assert new == "False" and int(stored) > 100  # every method came from the file


def test_precompile_where_it_cannot_write_says_so(tmp_path):
    core = _core_copy(tmp_path)
    (core / "flowdeck" / "__pycache__").write_text("a file where the folder would go")
    done = _in(core, PRECOMPILE)
    assert done.returncode == 1
    assert "flowdeck precompile:" in done.stderr and "writable" in done.stderr
    assert "Traceback" not in done.stderr


def test_precompile_that_cannot_write_the_methods_says_so(tmp_path):
    """The bytecode compiles, but the methods' file cannot be written (here a folder
    stands where it goes): exit 1 and the reason, never "Compiled"."""
    core = _core_copy(tmp_path)
    tag = sys.implementation.cache_tag
    (core / "flowdeck" / "__pycache__" / f"compiled_dataclasses.{tag}.marshal").mkdir(
        parents=True)
    done = _in(core, PRECOMPILE)
    assert done.returncode == 1, done.stdout
    assert "could not be kept" in done.stderr and "Compiled" not in done.stdout


def test_precompile_in_the_packaged_app_says_where_to_run_it(monkeypatch, capsys):
    from flowdeck.cli.main import precompile_command
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert precompile_command() == 1
    assert "python3 -m flowdeck.cli.main precompile" in capsys.readouterr().err
