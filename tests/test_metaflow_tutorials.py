"""Metaflow's own tutorials 00-03, copied as they ship with Metaflow, on both engines.

On Flowdeck's engine they run unchanged (`flowdeck run --engine flowdeck FILE`, the real
Metaflow blocked from the path) and with only their import lines changed (`python FILE
run`); 03 reads 02's run through the client, from the folder beside its own, as Metaflow's
users run them (`cd tutorials; ... 02-statistics/stats.py; ... 03-playlist-redux/...`).
On Metaflow's engine 00-02 run unchanged through the bridge. They need only the standard
library (01 and 02 read their CSV with `csv`); their notebooks are not run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORE, ROOT, child_env

from flowdeck.engines.launching import build_launch

BLOCKED = ROOT / "tests" / "compat" / "sandbox" / "blocked"  # a `metaflow` that refuses

#: (folder, file, flow, a line its output must hold)
TUTORIALS = [
    ("00-helloworld", "helloworld.py", "HelloFlow", "HelloFlow is all done."),
    ("01-playlist", "playlist.py", "PlayListFlow", "Playlist for movies in genre 'Sci-Fi'"),
    ("02-statistics", "stats.py", "MovieStatsFlow", "Computing statistics for Drama"),
    ("03-playlist-redux", "playlist.py", "PlayListFlow", "Playlist for movies in genre 'Sci-Fi'"),
]


def _shipped() -> Path:
    """Metaflow's tutorials folder, found without importing Metaflow."""
    spec = importlib.util.find_spec("metaflow")
    folders = list(spec.submodule_search_locations or []) if spec else []
    found = next((Path(f) / "tutorials" for f in folders
                  if (Path(f) / "tutorials" / TUTORIALS[0][0]).is_dir()), None)
    if found is None:
        pytest.skip("Metaflow's tutorials are not installed (`pip install -e '.[test]'` "
                    "installs metaflow, which ships them)")
    return found


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The four tutorial folders, copied byte for byte (no caches) into one project."""
    shipped = _shipped()
    target = tmp_path / "tutorials"
    for folder, *_ in TUTORIALS:
        shutil.copytree(shipped / folder, target / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.ipynb"))
    return target


def _env(blocked: bool) -> dict[str, str]:
    """A user name (Metaflow refuses root) and, for Flowdeck's engine, no real Metaflow."""
    env = child_env(METAFLOW_USER="tester", USER="tester")
    if blocked:
        env["PYTHONPATH"] = os.pathsep.join([str(BLOCKED), str(CORE)])
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          encoding="utf-8", errors="replace", timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def _record(folder: Path, flow: str) -> dict:
    (path,) = (folder / ".flowdeck" / flow / "runs").glob("*/run.json")
    return json.loads(path.read_text(encoding="utf-8"))


def _check_03_read_02(project: Path, output: str) -> None:
    """03 used the latest successful run of 02 (a folder beside its own)."""
    stats = _record(project / "02-statistics", "MovieStatsFlow")
    assert f"MovieStatsFlow/{stats['run_id']}" in output
    from flowdeck import Run
    got = Run(f"PlayListFlow/{_record(project / '03-playlist-redux', 'PlayListFlow')['run_id']}",
              root=project / "03-playlist-redux" / ".flowdeck", _namespace_check=False)
    made = Run(f"MovieStatsFlow/{stats['run_id']}", root=project / "02-statistics" / ".flowdeck",
               _namespace_check=False)
    assert got["start"].task.data.genre_stats == made.data.genre_stats
    assert got.data.playlist  # Sci-Fi has high-grossing films in the data


def test_tutorials_run_unchanged_on_flowdecks_engine(project: Path) -> None:
    originals = {f: (project / f / n).read_bytes() for f, n, *_ in TUTORIALS}
    outputs = {}
    for folder, name, flow, expected in TUTORIALS:
        # as their README says, from the tutorials folder; the engine is the only option
        proc = _run([sys.executable, "-m", "flowdeck.cli.main", "run", "--engine", "flowdeck",
                     f"{folder}/{name}"], project, _env(blocked=True))
        assert expected in proc.stdout, proc.stdout[-3000:]
        record = _record(project / folder, flow)
        assert (record["engine"], record["status"]) == ("flowdeck", "succeeded")
        outputs[folder] = proc.stdout
    _check_03_read_02(project, outputs["03-playlist-redux"])
    assert {f: (project / f / n).read_bytes() for f, n, *_ in TUTORIALS} == originals


def test_tutorials_run_with_only_their_import_lines_changed(project: Path) -> None:
    outputs = {}
    for folder, name, flow, expected in TUTORIALS:
        path = project / folder / name
        source = path.read_text(encoding="utf-8")
        changed = source.replace("from metaflow import ", "from flowdeck import ")
        assert [a for a, b in zip(source.splitlines(), changed.splitlines(), strict=True)
                if a != b] == [ln for ln in source.splitlines() if "from metaflow import " in ln]
        path.write_text(changed, encoding="utf-8")
        proc = _run([sys.executable, str(path.relative_to(project)), "run"], project,
                    _env(blocked=True))
        assert expected in proc.stdout, proc.stdout[-3000:]
        assert _record(project / folder, flow)["status"] == "succeeded"
        outputs[folder] = proc.stdout
    _check_03_read_02(project, outputs["03-playlist-redux"])


def test_tutorials_00_to_02_run_unchanged_on_metaflows_engine(project: Path) -> None:
    if importlib.util.find_spec("metaflow") is None:
        pytest.skip("Metaflow is not installed; `pip install -e '.[test]'` installs it")
    for folder, name, flow, expected in TUTORIALS[:3]:
        spec = build_launch(str(project / folder / name), flow, "metaflow", ["run"],
                            project_root=str(project))
        assert spec.cwd == str(project)  # where `cd tutorials; python 02-.../stats.py run` runs
        proc = _run(spec.argv, Path(spec.cwd), {**_env(blocked=False), **spec.env})
        assert expected in proc.stdout, proc.stdout[-3000:]
        record = _record(project / folder, flow)
        assert (record["engine"], record["status"]) == ("metaflow", "succeeded")
    assert (project / ".metaflow").is_dir()
