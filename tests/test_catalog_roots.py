"""Roots added and removed one at a time: only that root is read, and the diff says so."""

from __future__ import annotations

from pathlib import Path

from discovery_helpers import flow_source, names

from flowdeck.discovery.catalog import FlowCatalog


def folder_with(path: Path, *flows: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in flows:
        (path / f"{name.lower()}.py").write_text(flow_source(name))
    return path


def test_add_root_scans_that_root_only(tmp_path: Path) -> None:
    first = folder_with(tmp_path / "first", "FirstFlow")
    second = folder_with(tmp_path / "second", "SecondFlow")
    catalog = FlowCatalog([first])
    _, diff = catalog.scan()
    assert diff.roots_added == (str(first),)
    # An edit no event reported: a rescan of `first` would see it; adding `second` must not.
    (first / "firstflow.py").write_text(flow_source("FirstFlow", note="edited"))
    snapshot, diff = catalog.add_root(second)
    assert names(diff.added) == ["SecondFlow"] and diff.changed == ()
    assert diff.roots_added == (str(second),) and diff.roots_changed
    assert diff.paths == (str(second),)
    assert diff.snapshot is snapshot and snapshot.roots == (str(first), str(second))
    assert "edited" not in snapshot.flows_in(first / "firstflow.py")[0].flow.doc
    assert diff.as_dict()["roots_added"] == [str(second)]


def test_adding_a_root_twice_is_a_refresh(tmp_path: Path) -> None:
    folder = folder_with(tmp_path / "flows", "OnceFlow")
    catalog = FlowCatalog([])
    catalog.add_root(folder)
    snapshot, diff = catalog.add_root(folder)
    assert diff.empty and snapshot.roots == (str(folder),)


def test_a_missing_root_is_still_announced(tmp_path: Path) -> None:
    catalog = FlowCatalog([])
    snapshot, diff = catalog.add_root(tmp_path / "not-yet")
    assert not diff.empty and diff.roots_added == (str(tmp_path / "not-yet"),)
    assert snapshot.missing_roots == (str(tmp_path / "not-yet"),)


def test_remove_root_drops_its_flows(tmp_path: Path) -> None:
    keep = folder_with(tmp_path / "keep", "KeepFlow")
    drop = folder_with(tmp_path / "drop", "DropFlow")
    catalog = FlowCatalog([keep, drop])
    catalog.scan()
    snapshot, diff = catalog.remove_root(drop)
    assert names(diff.removed) == ["DropFlow"] and diff.roots_removed == (str(drop),)
    assert snapshot.roots == (str(keep),) and names(snapshot.entries) == ["KeepFlow"]
    _, again = catalog.remove_root(drop)
    assert again.empty


def test_a_file_root_under_a_new_folder_root_stays_listed(tmp_path: Path) -> None:
    """"Watch this folder" for a file opened alone: add the folder, drop the file's root."""
    folder = folder_with(tmp_path / "Downloads", "HelloFlow", "SiblingFlow")
    hello = folder / "helloflow.py"
    catalog = FlowCatalog([hello])
    _, diff = catalog.scan()
    assert names(diff.added) == ["HelloFlow"]
    _, diff = catalog.add_root(folder)
    assert names(diff.added) == ["SiblingFlow"]
    snapshot, diff = catalog.remove_root(hello)
    assert diff.removed == () and diff.added == () and diff.roots_removed == (str(hello),)
    assert names(snapshot.entries) == ["HelloFlow", "SiblingFlow"]


def test_removing_a_folder_root_relists_a_root_inside_it(tmp_path: Path) -> None:
    outer = folder_with(tmp_path / "outer", "OuterFlow")
    inner = folder_with(outer / ".hidden", "InnerFlow")  # outer's walk skips hidden folders
    catalog = FlowCatalog([outer, inner])
    catalog.scan()
    snapshot, diff = catalog.remove_root(outer)
    assert names(diff.removed) == ["OuterFlow"]
    assert names(snapshot.entries) == ["InnerFlow"] and snapshot.roots == (str(inner),)
