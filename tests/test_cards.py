"""Cards (`@card`, `current.card`, `flowdeck.cards`) on real runs of real flow files.

Each test writes a flow, runs it with `python flow.py run` and reads the cards back
with the client (`get_cards`) and from the files the task wrote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_S, child_env, run_flow, wait_for

from flowdeck import Flow
from flowdeck.cards import (
    Card,
    CardNotPresentException,
    Image,
    Markdown,
    ProgressBar,
    Table,
    VegaChart,
    get_cards,
)
from flowdeck.cards.html import component_html, markdown_html
from flowdeck.cards.index import ERROR, FINAL, LIVE, STOPPED, read_index
from flowdeck.store.layout import RunLayout

REPORT_FLOW = '''
import os
import time
from flowdeck import FlowSpec, Parameter, card, current, step
from flowdeck.cards import Artifact, Image, Markdown, ProgressBar, Table, VegaChart

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da636060606000000005000160d2c1a50000000049454e44ae426082")


class Broken(Markdown):
    def render(self):
        raise RuntimeError("this component is broken")


class ReportFlow(FlowSpec):
    epochs = Parameter("epochs", default=3, help="how many epochs")

    @card
    @step
    def start(self):
        self.table_rows = [[1, "one"], [2, "two"]]
        self.big = list(range(100000))
        current.card.append(Markdown("# Start of **ReportFlow**"))
        current.card.append(Table(self.table_rows, headers=["n", "name"]))
        current.card.append(Image(PNG, label="a pixel"))
        current.card.append(Broken("never shown"))
        self.next(self.train)

    @card(type="blank", id="progress", refresh_interval=0)
    @card(type="default", id="summary")
    @step
    def train(self):
        bar = ProgressBar(max=self.epochs, label="epochs")
        current.card["progress"].append(bar)
        current.card["progress"].append(Artifact({"lr": 0.1}, name="config"))
        current.card["progress"].append(VegaChart({"mark": "line", "data": {"values": [
            {"epoch": i, "loss": 1.0 / (i + 1)} for i in range(4)]}, "encoding": {
            "x": {"field": "epoch"}, "y": {"field": "loss"}}}))
        gate = os.environ.get("CARD_GATE")
        for epoch in range(self.epochs):
            bar.update(epoch + 1, metadata=f"epoch {epoch + 1}")
            current.card["progress"].refresh()
            if gate and epoch == 0:
                open(gate + ".waiting", "w").close()
                while not os.path.exists(gate):
                    time.sleep(0.05)
        current.card["summary"].append(Markdown("trained"))
        self.score = 0.75
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ReportFlow()
'''

FAILING_FLOW = '''
import os
import time
from flowdeck import FlowSpec, card, current, step
from flowdeck.cards import Markdown, ProgressBar


class BrokenCard(object):
    pass


from flowdeck.cards import MetaflowCard


class RaisingCard(MetaflowCard):
    type = "raising_card"

    def render(self, task):
        raise ValueError("the card type itself fails")


class CardFailFlow(FlowSpec):

    @card(type="raising_card")
    @card(type="no_such_card_type")
    @step
    def start(self):
        self.value = 1
        self.next(self.live)

    @card(type="blank", refresh_interval=0)
    @step
    def live(self):
        current.card.append(ProgressBar(max=10, value=3))
        current.card.refresh()
        raise RuntimeError("the step fails after a refresh")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CardFailFlow()
'''

HTML_FLOW = '''
from flowdeck import FlowSpec, card, step


class HtmlFlow(FlowSpec):

    @card(type="html")
    @step
    def start(self):
        self.html = ("<html><body><h1 id='mine'>Made by the step</h1>"
                     "<script>document.title = 'set by the step'</script>"
                     "<img src='https://example.com/remote.png'></body></html>")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HtmlFlow()
'''


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _run(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_flow(path, "run", *args, timeout=WAIT_S, env=child_env())
    return done


def _root(path: Path) -> Path:
    return path.parent / ".flowdeck"


def test_default_card_shows_components_artifacts_parameters_and_steps(tmp_path: Path) -> None:
    flow = _write(tmp_path, "report.py", REPORT_FLOW)
    done = _run(flow)
    assert done.returncode == 0, done.stderr
    run = Flow("ReportFlow", root=_root(flow)).latest_run
    cards = get_cards(run["start"].task)
    assert len(cards) == 1
    card = cards[0]
    assert isinstance(card, Card) and card.type == "default" and card.id is None
    assert card.state == FINAL and len(card.hash) == 40 and Path(card.path).is_file()
    html = card.html
    assert "<h1>Start of <strong>ReportFlow</strong></h1>" in html  # Markdown
    assert "<th>n</th><th>name</th>" in html and "<td>one</td>" in html  # Table
    assert 'src="data:image/png;base64,' in html and "a pixel" in html  # Image, embedded
    assert "this component is broken" in html  # the broken component, shown in its place
    assert "<dt>epochs</dt><dd><code>3</code></dd>" in html  # parameters
    assert '<span class="name">table_rows</span>' in html  # artifacts, with bounded reprs
    big = html.split('<span class="name">big</span>', 1)[1].split("</pre>", 1)[0]
    assert "..." in big and len(big) < 2500
    assert '<span class="step current">start</span>' in html and "→ train" in html  # DAG
    assert "<script" not in html and "http://" not in html and "https://" not in html
    with pytest.raises(CardNotPresentException, match=r"not found for pathspec .*/end/"):
        get_cards(run["end"].task)  # no @card: no cards, said as Metaflow says it


def test_two_cards_with_ids_and_a_refreshed_progress_bar(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    flow = _write(tmp_path, "report.py", REPORT_FLOW)
    assert _run(flow).returncode == 0
    task = Flow("ReportFlow", root=_root(flow)).latest_run["train"].task
    cards = get_cards(task)
    assert sorted(c.id for c in cards) == ["progress", "summary"]
    monkeypatch.chdir(tmp_path)  # a pathspec is found in the store of the working directory
    assert [c.id for c in cards] == [c.id for c in get_cards(task.pathspec)]
    progress, summary = cards["progress"], cards["summary"]
    assert progress.type == "blank" and summary.type == "default"
    assert 'aria-valuenow="3"' in progress.html and "epoch 3" in progress.html
    assert '<span class="name">config</span>' in progress.html
    assert "<svg" in progress.html and "polyline" in progress.html  # the Vega-Lite line
    assert "<p>trained</p>" in summary.html and "score" in summary.html
    assert [c.id for c in get_cards(task, type="blank")] == ["progress"]
    assert [c.type for c in get_cards(task, id="summary")] == ["default"]
    data = progress.get_data()
    assert data is not None and data["reload_token"] == "final"


def test_a_live_card_is_written_while_the_task_runs(tmp_path: Path) -> None:
    flow = _write(tmp_path, "report.py", REPORT_FLOW)
    gate = tmp_path / "gate"
    process = subprocess.Popen([sys.executable, str(flow), "run"], cwd=tmp_path,
                               env=child_env(CARD_GATE=str(gate)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for(Path(str(gate) + ".waiting").exists, "the task reaching its gate",
                 still_going=lambda: process.poll() is None, limit=WAIT_S)
        run = Flow("ReportFlow", root=_root(flow)).latest_run
        task = run["train"].task
        live = get_cards(task, id="progress")
        assert len(live) == 1 and live[0].state == LIVE
        assert 'aria-valuenow="1"' in live[0].html and ">live<" in live[0].html
        assert 'http-equiv="refresh"' in live[0].html  # a browser follows it too
        gate.touch()
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    final = get_cards(task, id="progress")[0]
    assert final.state == FINAL and 'aria-valuenow="3"' in final.html
    assert 'http-equiv="refresh"' not in final.html


def test_a_failing_card_never_fails_its_task_and_is_recorded(tmp_path: Path) -> None:
    flow = _write(tmp_path, "failing.py", FAILING_FLOW)
    done = _run(flow)
    assert done.returncode != 0  # the `live` step fails (on purpose), not a card
    assert "the card type itself fails" in done.stderr
    run = Flow("CardFailFlow", root=_root(flow)).latest_run
    start = run["start"].task
    assert start.successful  # both of its cards failed
    cards = get_cards(start)
    assert sorted(c.type for c in cards) == ["no_such_card_type", "raising_card"]
    for card in cards:
        assert card.state == ERROR and card.error
        assert "This card could not be made" in card.html  # the error card (save_errors)
    assert "There is no card type 'no_such_card_type'" in cards[1].error + cards[0].error
    # A live card of a task that then failed: kept, marked stopped, never rendered final.
    live = get_cards(run["live"].task)
    assert len(live) == 1 and live[0].state == STOPPED and 'aria-valuenow="3"' in live[0].html
    # Its file too: no live badge, no reload (a browser said live and reloaded it forever).
    stopped = Path(live[0].path).read_text()
    assert 'aria-valuenow="3"' in stopped and "<h1>" in stopped
    assert 'http-equiv="refresh"' not in stopped and '<span class="live">' not in stopped


def test_html_card_type_and_metaflow_module_paths(tmp_path: Path) -> None:
    flow = _write(tmp_path, "page.py", HTML_FLOW)
    assert _run(flow).returncode == 0
    task = Flow("HtmlFlow", root=_root(flow)).latest_run["start"].task
    made = get_cards(task)[0].html
    assert "<h1 id='mine'>Made by the step</h1>" in made
    # Passed through as given, as in Metaflow: its script and remote picture are kept
    # (docs/cards.md says so; Flowdeck's own card types carry neither).
    assert "<script>document.title = 'set by the step'</script>" in made
    assert "<img src='https://example.com/remote.png'>" in made
    from flowdeck.plugins.cards.card_client import get_cards as metaflow_get_cards
    from flowdeck.plugins.cards.card_modules.test_cards import TestEditableCard
    assert metaflow_get_cards is get_cards and TestEditableCard.ALLOW_USER_COMPONENTS
    from flowdeck import card, current  # noqa: F401  (the public names)


def test_the_card_index_is_the_one_record_the_window_reads(tmp_path: Path) -> None:
    flow = _write(tmp_path, "report.py", REPORT_FLOW)
    assert _run(flow).returncode == 0
    run = Flow("ReportFlow", root=_root(flow)).latest_run
    layout = RunLayout(_root(flow), "ReportFlow")
    entries = read_index(layout.card_index(run.id, "train", run["train"].task.id))
    assert [(e.index, e.type, e.id, e.state) for e in entries] == [
        (0, "default", "summary", FINAL), (1, "blank", "progress", FINAL)]
    raw = json.loads(layout.card_index(run.id, "train", run["train"].task.id).read_text())
    assert raw["version"] == 1 and all(c["file"].endswith(".html") for c in raw["cards"])


def test_a_resumed_run_reads_the_cards_of_the_tasks_it_reused(tmp_path: Path) -> None:
    flow = _write(tmp_path, "report.py", REPORT_FLOW)
    assert _run(flow).returncode == 0
    first = Flow("ReportFlow", root=_root(flow)).latest_run
    done = run_flow(flow, "resume", "end", timeout=WAIT_S, env=child_env())
    assert done.returncode == 0, done.stderr
    resumed = Flow("ReportFlow", root=_root(flow)).latest_run
    assert resumed.id != first.id
    reused = resumed["start"].task
    assert reused.origin_pathspec == first["start"].task.pathspec
    cards = get_cards(reused)
    assert len(cards) == 1 and cards.origin_pathspec == reused.origin_pathspec
    assert cards[0].html == get_cards(first["start"].task)[0].html


SLOW_CARD_FLOW = '''
import time
from flowdeck import FlowSpec, card, step, timeout
from flowdeck.cards import MetaflowCard


class SlowCard(MetaflowCard):
    type = "slow_card"

    def render(self, task):
        time.sleep(60)
        return "never"


class SlowCardFlow(FlowSpec):

    @timeout(seconds=1)
    @card(type="slow_card", timeout=120)
    @step
    def start(self):
        self.done = True
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SlowCardFlow()
'''


def test_a_slow_card_in_a_step_with_timeout_is_a_card_error_not_a_killed_task(
        tmp_path: Path) -> None:
    flow = _write(tmp_path, "slow.py", SLOW_CARD_FLOW)
    done = _run(flow)
    assert done.returncode == 0, done.stderr
    task = Flow("SlowCardFlow", root=_root(flow)).latest_run["start"].task
    assert task.successful and task.data.done
    card = get_cards(task)[0]
    assert card.state == ERROR and "timed out" in (card.error or "")


COMPONENTS_219_FLOW = '''
from flowdeck import FlowSpec, card, current, step
from flowdeck.cards import EventsTimeline, JSONViewer, PythonCode, ValueBox, YAMLViewer


def loss(x):
    return (x - 3) ** 2


class NewComponentsFlow(FlowSpec):
    @card
    @step
    def start(self):
        box = ValueBox(title="accuracy", value="0.90", subtitle="validation")
        current.card.append(box)
        box.update(value="0.93", change_indicator="+0.03")
        current.card.append(JSONViewer({"layers": [64, 32], "dropout": 0.1}))
        current.card.append(YAMLViewer({"optimizer": "adam"}))
        current.card.append(PythonCode(loss))
        events = EventsTimeline(title="training", max_events=2)
        for epoch in range(3):
            events.add_event({"epoch": epoch, "loss": 1.0 / (epoch + 1)})
        current.card.append(events)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NewComponentsFlow()
'''


def test_metaflow_219_components_render_in_a_card(tmp_path: Path) -> None:
    """ValueBox, JSONViewer, YAMLViewer, PythonCode and EventsTimeline (Metaflow 2.19's
    cards): a flow that imported them failed with ImportError; they render now."""
    flow = _write(tmp_path, "components.py", COMPONENTS_219_FLOW)
    done = _run(flow)
    assert done.returncode == 0, done.stderr
    run = Flow("NewComponentsFlow", root=_root(flow)).latest_run
    [made] = get_cards(run["start"].task)
    html = made.html
    assert "accuracy" in html and "0.93" in html and "+0.03" in html and "0.90" not in html
    assert "&quot;layers&quot;: [" in html or '"layers": [' in html
    assert "optimizer" in html and "def loss(x):" in html
    assert "<th>time</th><th>epoch</th><th>loss</th>" in html
    assert html.count("<td class=\"num\">") >= 4 and "<td class=\"num\">0</td>" not in html


BAD_INPUT_FLOW = '''
import numpy as np
import pandas as pd
from flowdeck import FlowSpec, card, current, step
from flowdeck.cards import Image, Markdown, Table, VegaChart


class BadInputFlow(FlowSpec):
    @card
    @step
    def start(self):
        self.scores = [0.91, 0.87, 0.93]
        current.card.append(Table(self.scores, headers=["score"]))  # a flat list: a common slip
        current.card.append(Table(5))
        current.card.append(Table([[1]], headers=5))
        current.card.append(Table.from_dataframe(pd.Series([1, 2], name="s")))
        current.card.append(Table.from_dataframe(np.arange(3)))
        current.card.append(Markdown(12345))
        current.card.append(Image("plot.png", label="a file name"))
        current.card.append(VegaChart("not a spec"))
        current.card.append(Markdown("after the slips"))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BadInputFlow()
'''


def test_a_component_given_the_wrong_kind_of_data_is_an_error_block_not_a_failed_task(
        tmp_path: Path) -> None:
    """`Table([0.91, 0.87], headers=["score"])` failed its task ("TypeError: 'float' object
    is not iterable"), as did Table(5), headers=5 and from_dataframe of a Series or an
    array: each is an error block now, naming what was given and what to pass."""
    pytest.importorskip("pandas")
    flow = _write(tmp_path, "bad_input.py", BAD_INPUT_FLOW)
    done = _run(flow)
    assert done.returncode == 0, done.stderr
    [made] = get_cards(Flow("BadInputFlow", root=_root(flow)).latest_run["start"].task)
    text = unescape(made.html)
    assert text.count("wrong kind of data") == 8
    assert "Row 0 of the Table's data is a float (0.91)" in text
    assert "Table([[v] for v in values]" in text
    assert "Table's data is an int (5)" in text and "Table's headers are an int (5)" in text
    assert "not a pandas.Series" in text and "series.to_frame()" in text
    assert "not a numpy.ndarray" in text and "array.tolist()" in text
    assert "Markdown takes a string of Markdown, not an int (12345)" in text
    assert "Image takes the picture itself, not a str ('plot.png')" in text
    assert "VegaChart takes a Vega-Lite spec as a dict" in text
    assert "<p>after the slips</p>" in text and "Traceback" not in text


@pytest.mark.parametrize("make, says", [
    (lambda: Table([0.1, 0.2], headers=["score"]), "Row 0 of the Table's data is a float"),
    (lambda: Table(5), "Table's data is an int (5), not a list of rows"),
    (lambda: Table([[1]], headers=5), "Table's headers are an int (5)"),
    (lambda: Table([[1]], headers="abc"), "Table's headers are a str ('abc')"),
    (lambda: Table(["ab", "cd"]), "Row 0 of the Table's data is a str ('ab')"),
    (lambda: Table.from_dataframe(None), "takes a pandas or polars DataFrame, not a NoneType"),
    (lambda: Markdown(12345), "not an int (12345)"),
    (lambda: Image(None), "src is None"),
    (lambda: Image("plot.png"), "Image(open(path, 'rb').read())"),
    (lambda: Image(b"garbage"), "are not a PNG, JPEG, GIF, WebP or SVG image"),
    (lambda: VegaChart("not a spec"), "not a str ('not a spec')"),
    (lambda: VegaChart({"values": object()}), "the VegaChart's spec is not JSON"),
])
def test_a_components_wrong_input_renders_as_an_error_block(make: Any, says: str) -> None:
    component = make()  # never raises in the step
    value = component.render()
    assert value["type"] == "error" and value["title"].endswith(": wrong kind of data")
    assert says in value["message"] and value["detail"] == ""  # no traceback into the card


def test_components_keep_what_metaflow_takes_and_raise_where_it_raises() -> None:
    pixel = "data:image/png;base64,iVBORw0KGgo="
    assert Image(pixel).render()["src"] == pixel  # a data: URI, as Metaflow's Image takes
    assert Table([(1, "a")], headers=("n", "name")).render()["data"] == [[1, "a"]]
    assert Markdown(None).render()["source"] == ""
    with pytest.raises(ValueError, match="takes an Altair chart, not a dict"):
        VegaChart.from_altair_chart({"mark": "line"})  # Metaflow raises ValueError too


def test_a_progress_bar_with_max_0_shows_its_value_and_one_of_text_says_what_to_pass() -> None:
    """ProgressBar(max=0, value=5) read "5/100 (5%)" (`max or 100`), and max="ten",
    value="x" read "0/0 (0%)". Metaflow shows `value/max` only for a max above 0, else the
    value alone, on an HTML <progress> whose top is then 1; text is an error block."""
    zero = component_html(ProgressBar(max=0, value=5, unit="items").render())
    assert '<div class="meta">5 items</div>' in zero and "100" not in zero.split("meta")[1]
    assert 'aria-valuemax="1"' in zero and "width:100.0%" in zero
    assert '<div class="meta">0.5</div>' in component_html(ProgressBar(max=None,
                                                                       value=0.5).render())
    assert '<div class="meta">3/4 (75%)</div>' in component_html(ProgressBar(max=4,
                                                                            value=3).render())
    text = unescape(component_html(ProgressBar(max="ten", value="x").render()))
    assert "ProgressBar: wrong kind of data" in text and "0/0" not in text
    assert "max='ten' (str), value='x' (str)" in text and "ProgressBar(max=10, value=3)" in text
    assert "value=nan" in unescape(component_html(ProgressBar(max=1,
                                                              value=float("nan")).render()))


def test_a_markdown_image_is_a_marked_link_to_the_picture_never_a_fetch() -> None:
    """`![alt](url)` drew a stray "!" and a plain link. A card fetches nothing: a picture
    by URL is a link marked as an image; an embedded data: URI is drawn."""
    out = markdown_html("See ![a cat](https://example.com/cat.png) and [docs](https://d.org).")
    assert "!" not in out and "<img" not in out
    assert ('<a class="image-ref" href="https://example.com/cat.png" title="an image the card '
            'does not fetch: https://example.com/cat.png">[image: a cat]</a>') in out
    assert '<a href="https://d.org">docs</a>' in out
    assert "[image: https://x.org/a.png]</a>" in markdown_html("![](https://x.org/a.png)")
    pixel = "data:image/png;base64,iVBORw0KGgo="
    assert f'<img src="{pixel}" alt="dot">' in markdown_html(f"![dot]({pixel})")
    assert "<a" not in markdown_html("![x](javascript:alert(1))")  # shown as the text it is


def stop_a_live_card(tmp_path: Path, how: str,
                     while_live: Callable[[Path, Any], None] | None = None) -> tuple[Path, Any]:
    """ReportFlow's `train` task with its live card (`while_live(flow, task)` is called
    then), then its run stopped by Ctrl+C (`sigint`, to the run's process group, as a
    terminal sends it) or its orchestrator killed (`kill`: SIGKILL; its workers die with
    it and write nothing more). Gives (flow file, task)."""
    flow = _write(tmp_path, "report.py", REPORT_FLOW)
    gate = tmp_path / "gate"
    process = subprocess.Popen([sys.executable, str(flow), "run"], cwd=tmp_path,
                               env=child_env(CARD_GATE=str(gate)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(Path(str(gate) + ".waiting").exists, "the task reaching its gate",
                 still_going=lambda: process.poll() is None, limit=WAIT_S)
        task = Flow("ReportFlow", root=_root(flow)).latest_run["train"].task
        assert get_cards(task, id="progress")[0].state == LIVE
        if while_live is not None:
            while_live(flow, task)
        if how == "sigint":
            os.killpg(process.pid, signal.SIGINT)
        else:
            os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=WAIT_S)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # hygiene: nothing of the run outlives it
        except ProcessLookupError:
            pass
        process.communicate()
    return flow, task


@pytest.mark.parametrize("how, status", [("sigint", "cancelled"), ("kill", "crashed")])
def test_a_live_card_of_a_run_stopped_or_crashed_reads_stopped_without_badge_or_reload(
        tmp_path: Path, how: str, status: str) -> None:
    """A live card whose run was cancelled (Ctrl+C) or whose orchestrator was killed kept
    its blue "live" badge and its 2 s reload, and after kill -9 `get_cards` said `live`
    forever under a run that was `crashed`."""
    flow, task = stop_a_live_card(tmp_path, how)
    assert Flow("ReportFlow", root=_root(flow)).latest_run.status == status
    [card] = get_cards(task, id="progress")
    assert card.state == STOPPED and 'aria-valuenow="1"' in card.html
    assert 'http-equiv="refresh"' not in card.html and '<span class="live">' not in card.html
    layout = RunLayout(_root(flow), "ReportFlow")
    [recorded] = [e for e in read_index(layout.card_index(task.run.id, "train", task.id))
                  if e.id == "progress"]
    # A cancelled task marks it and rewrites its file; a killed one could not (the reader's
    # rule above says stopped all the same).
    assert recorded.state == (STOPPED if how == "sigint" else LIVE)
