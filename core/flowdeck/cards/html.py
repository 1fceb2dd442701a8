"""Rendered components to one self-contained HTML page: inline CSS, no script, no network.

A card is a file someone opens in a browser, a web view or an archive years later, so
it carries everything it shows (images as data URIs) and needs nothing to be drawn.
Every value that reaches the page is escaped here; Markdown is turned into HTML by a
small renderer of the common subset (headings, paragraphs, lists, code, emphasis,
links, images: a picture by URL as a marked link, since a card fetches nothing), never
passed through as raw HTML.
"""

from __future__ import annotations

import html
import json
import math
import numbers
import re
from typing import Any

_CSS = """
:root { color-scheme: light dark; --fg: #1d2330; --muted: #5b6477; --bg: #ffffff;
  --panel: #f4f6fa; --line: #d9dee8; --accent: #2f6fde; --bad: #b42318; --warn: #9a6700; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e9ef; --muted: #a3abbb; --bg: #16181d;
  --panel: #1f232b; --line: #343a46; --accent: #6ea1ff; --bad: #ff7b72; --warn: #e3b341; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 20px 28px; font: 14px/1.5 system-ui, -apple-system, "Segoe UI",
  Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { border-bottom: 1px solid var(--line); margin-bottom: 16px; padding-bottom: 8px; }
header h1 { font-size: 18px; margin: 0; }
header .sub { color: var(--muted); font-size: 12px; }
.live { display: inline-block; margin-left: 8px; padding: 0 6px; border-radius: 8px;
  background: var(--accent); color: #fff; font-size: 11px; vertical-align: middle; }
section { margin: 18px 0; }
h2 { font-size: 15px; margin: 18px 0 8px; }
.component { margin: 10px 0; }
table { border-collapse: collapse; font-size: 13px; max-width: 100%; display: block;
  overflow-x: auto; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left;
  vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre, code { font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--panel); padding: 8px 10px; border-radius: 4px; overflow-x: auto;
  white-space: pre-wrap; word-break: break-word; margin: 4px 0; }
p code, li code { background: var(--panel); padding: 0 3px; border-radius: 3px; }
figure { margin: 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12px; }
a.image-ref { color: var(--muted); }
.error { border-left: 4px solid var(--bad); background: var(--panel); padding: 6px 10px; }
.error.warning { border-left-color: var(--warn); }
.error strong { color: var(--bad); } .error.warning strong { color: var(--warn); }
.progress { max-width: 520px; }
.progress .bar { height: 10px; background: var(--panel); border: 1px solid var(--line);
  border-radius: 5px; overflow: hidden; }
.progress .fill { height: 100%; background: var(--accent); }
.progress .meta { color: var(--muted); font-size: 12px; }
.artifact .name { font-weight: 600; } .artifact .kind { color: var(--muted); font-size: 12px; }
.dag { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.dag .step { border: 1px solid var(--line); border-radius: 4px; padding: 2px 8px;
  background: var(--panel); }
.dag .step.current { border-color: var(--accent); box-shadow: 0 0 0 1px var(--accent); }
.dag .arrow { color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
svg.chart { background: var(--panel); border-radius: 4px; }
svg.chart .axis { stroke: var(--muted); stroke-width: 1; }
svg.chart text { fill: var(--muted); font-size: 10px; }
svg.chart .mark { stroke: var(--accent); fill: var(--accent); }
details summary { cursor: pointer; color: var(--muted); }
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


#: A live page's badge after its title, and its reload: what `stopped_html` takes out.
LIVE_BADGE = '<span class="live">live</span>'
_RELOAD_TAG = re.compile(r'<meta http-equiv="refresh" content="\d+">')


def page(title: str, body: str, subtitle: str = "", live: bool = False,
         refresh_seconds: float = 0) -> str:
    """A whole card page. A live card asks the browser to reload it (the window watches the
    file instead); a final card never reloads."""
    reload_tag = (f'<meta http-equiv="refresh" content="{max(1, int(refresh_seconds))}">'
                  if live and refresh_seconds else "")
    badge = LIVE_BADGE if live else ""
    sub = f'<div class="sub">{esc(subtitle)}</div>' if subtitle else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{reload_tag}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{esc(title)}{badge}</h1>{sub}</header>"
            f"<main>{body}</main></body></html>\n")


def stopped_html(text: str) -> str:
    """A live page (`page(live=True)`) as a stopped one, its content kept: without the
    badge and the reload, so a card whose task ended without a final card neither says
    live nor reloads forever in a browser. Any other HTML comes back as it is (what a
    step's components put in a page is escaped, so it never matches)."""
    return _RELOAD_TAG.sub("", text, count=1).replace(LIVE_BADGE, "", 1)


def components_html(values: list[Any]) -> str:
    return "".join(f'<div class="component">{component_html(v)}</div>' for v in values
                   if v is not None)


def component_html(value: Any) -> str:
    """One rendered component as HTML; an unknown shape is shown as text, never trusted."""
    if isinstance(value, dict):
        renderer = _RENDERERS.get(str(value.get("type")))
        if renderer is not None:
            try:
                return renderer(value)
            except Exception as exc:  # a malformed value from a custom component
                return _error({"title": f"A {value.get('type')} component could not be shown",
                               "message": f"{type(exc).__name__}: {exc}"})
        return f"<pre>{esc(json.dumps(value, indent=2, default=str)[:20000])}</pre>"
    if isinstance(value, str):
        return f"<p>{esc(value)}</p>"
    return f"<pre>{esc(repr(value)[:20000])}</pre>"


def _cell_html(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return component_html(value)
    return esc("" if value is None else value)


def _table(value: dict[str, Any]) -> str:
    headers = value.get("headers") or []
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    rows = []
    for row in value.get("data") or []:
        cells = "".join(
            f'<td class="num">{esc(c)}</td>' if isinstance(c, (int, float))
            and not isinstance(c, bool) else f"<td>{_cell_html(c)}</td>" for c in row)
        rows.append(f"<tr>{cells}</tr>")
    more = value.get("truncated") or 0
    note = f'<div class="sub">{more} more rows not shown</div>' if more else ""
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{''.join(rows)}</tbody></table>{note}"


def _image(value: dict[str, Any]) -> str:
    src = str(value.get("src") or "")
    if not src.startswith("data:image/"):  # only embedded pictures: a card never fetches
        return _error({"title": "Image", "message": "the image is not embedded data"})
    label = value.get("label")
    caption = f"<figcaption>{esc(label)}</figcaption>" if label else ""
    return f'<figure><img src="{esc(src)}" alt="{esc(label or "image")}">{caption}</figure>'


def _artifact(value: dict[str, Any]) -> str:
    name = value.get("name")
    title = (f'<span class="name">{esc(name)}</span> ' if name else "") + (
        f'<span class="kind">{esc(value.get("data_type", ""))}</span>')
    return f'<div class="artifact">{title}<pre>{esc(value.get("repr", ""))}</pre></div>'


def _number(value: Any) -> float | None:
    """A progress bar's max or value as a float; None if it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _progress(value: dict[str, Any]) -> str:
    """A progress bar as Metaflow draws it: `value/max` when max is above 0; with max 0
    (or None) the value alone, on a bar whose top is 1 (HTML's <progress> rule, which
    Metaflow's bar follows). A max or value that is not a number is an error block."""
    top, now = _number(value.get("max") or 0), _number(value.get("value") or 0)
    if top is None or now is None:
        wrong = ", ".join(f"{name}={value.get(name)!r} ({type(value.get(name)).__name__})"
                          for name, number in (("max", top), ("value", now)) if number is None)
        return _error({"title": "ProgressBar: wrong kind of data",
                       "message": f"A progress bar's max and value are numbers; it got {wrong}."
                                  " Pass numbers: ProgressBar(max=10, value=3), "
                                  "bar.update(4)."})
    limit = top if top > 0 else 1.0
    share = max(0.0, min(1.0, now / limit))
    unit = value.get("unit") or ""
    label = esc(value.get("label") or "")
    details = value.get("details")
    unit_text = f" {esc(unit)}" if unit else ""
    meta = f"{now:g}/{top:g}{unit_text} ({share:.0%})" if top > 0 else f"{now:g}{unit_text}"
    extra = f" · {esc(details)}" if details else ""
    return (f'<div class="progress"><div>{label}</div><div class="bar" role="progressbar" '
            f'aria-valuenow="{now:g}" aria-valuemax="{limit:g}"><div class="fill" '
            f'style="width:{share * 100:.1f}%"></div></div>'
            f'<div class="meta">{meta}{extra}</div></div>')


def _error(value: dict[str, Any]) -> str:
    kind = "error warning" if value.get("warning") else "error"
    detail = value.get("detail")
    more = (f"<details><summary>traceback</summary><pre>{esc(detail)}</pre></details>"
            if detail else "")
    return (f'<div class="{kind}"><strong>{esc(value.get("title", "Error"))}</strong>'
            f'<pre>{esc(value.get("message", ""))}</pre>{more}</div>')


def _vega(value: dict[str, Any]) -> str:
    spec = value.get("spec") or {}
    svg = _vega_svg(spec)
    text = esc(json.dumps(spec, indent=2, default=str)[:50000])
    note = ("" if svg else '<div class="sub">Vega-Lite chart: drawn only for inline data '
            "with a line, bar, point or area mark; its spec:</div>")
    title = spec.get("title") if isinstance(spec, dict) else None
    head = f"<h2>{esc(title)}</h2>" if isinstance(title, str) else ""
    return (f"{head}{svg}{note}<details{'' if svg else ' open'}><summary>Vega-Lite spec"
            f"</summary><pre>{text}</pre></details>")


def _vega_svg(spec: Any, width: int = 480, height: int = 240) -> str:
    """A plain SVG of a simple Vega-Lite spec (inline values, two quantitative fields)."""
    if not isinstance(spec, dict):
        return ""
    mark = spec.get("mark")
    mark = mark.get("type") if isinstance(mark, dict) else mark
    values = (spec.get("data") or {}).get("values") if isinstance(spec.get("data"), dict) \
        else None
    enc = spec.get("encoding") or {}
    xf = (enc.get("x") or {}).get("field")
    yf = (enc.get("y") or {}).get("field")
    if mark not in ("line", "bar", "point", "area") or not isinstance(values, list) \
            or not xf or not yf:
        return ""
    points = []
    for index, row in enumerate(values[:5000]):
        if not isinstance(row, dict):
            return ""
        x, y = row.get(xf), row.get(yf)
        if not isinstance(y, (int, float)):
            return ""
        points.append((x if isinstance(x, (int, float)) else index, float(y)))
    if not points:
        return ""
    pad = 30
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + ([0.0] if mark in ("bar", "area") else [])
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    sx = (width - 2 * pad) / ((x1 - x0) or 1)
    sy = (height - 2 * pad) / ((y1 - y0) or 1)

    def px(x: float) -> float:
        return pad + (x - x0) * sx

    def py(y: float) -> float:
        return height - pad - (y - y0) * sy

    parts = [f'<line class="axis" x1="{pad}" y1="{height - pad}" x2="{width - pad}" '
             f'y2="{height - pad}"/>', f'<line class="axis" x1="{pad}" y1="{pad}" '
             f'x2="{pad}" y2="{height - pad}"/>',
             f'<text x="{pad}" y="{height - 8}">{esc(xf)}: {x0:g} … {x1:g}</text>',
             f'<text x="4" y="{pad - 8}">{esc(yf)}: {y0:g} … {y1:g}</text>']
    if mark in ("line", "area"):
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(points))
        parts.append(f'<polyline class="mark" fill="none" stroke-width="2" '
                     f'points="{path}" style="fill:none"/>')
    elif mark == "point":
        parts += [f'<circle class="mark" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3"/>'
                  for x, y in points]
    else:
        bar = max(2.0, (width - 2 * pad) / max(1, len(points)) * 0.7)
        parts += [f'<rect class="mark" x="{px(x) - bar / 2:.1f}" y="{min(py(y), py(0)):.1f}" '
                  f'width="{bar:.1f}" height="{abs(py(0) - py(y)):.1f}"/>' for x, y in points]
    return (f'<svg class="chart" width="{width}" height="{height}" role="img" '
            f'aria-label="{esc(yf)} by {esc(xf)}">{"".join(parts)}</svg>')


def _section(value: dict[str, Any]) -> str:
    title = value.get("title")
    head = f"<h2>{esc(title)}</h2>" if title else ""
    return f"<section>{head}{components_html(value.get('contents') or [])}</section>"


def _facts(value: dict[str, Any]) -> str:
    items = value.get("items") or []
    if not items:
        return f'<p class="sub">{esc(value.get("empty", "none"))}</p>'
    rows = "".join(f"<dt>{esc(k)}</dt><dd><code>{esc(v)}</code></dd>" for k, v in items)
    return f'<dl class="facts">{rows}</dl>'


def _dag(value: dict[str, Any]) -> str:
    """The flow's steps in order, each with the steps it goes to."""
    current = value.get("current")
    rows = []
    for step in value.get("steps") or []:
        name = step.get("name")
        kind = step.get("type") or ""
        cls = "step current" if name == current else "step"
        nxt = ", ".join(step.get("next") or []) or "—"
        foreach = f" (foreach {esc(step['foreach'])})" if step.get("foreach") else ""
        rows.append(f'<div class="dag"><span class="{cls}">{esc(name)}</span>'
                    f'<span class="arrow">→ {esc(nxt)}</span>'
                    f'<span class="sub">{esc(kind)}{foreach}</span></div>')
    return "".join(rows)


def _text(value: dict[str, Any]) -> str:
    return f"<p>{esc(value.get('text', ''))}</p>"


def _markdown(value: dict[str, Any]) -> str:
    return markdown_html(str(value.get("source", "")))


# -- Markdown (the common subset, escaped) ------------------------------------------

_INLINE_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?!\*)|(?<![_\w])_(?!\s)(.+?)(?<!\s)_(?!\w)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)(?:\s+&quot;[^)]*&quot;)?\)")
#: The URLs a card's Markdown links to (web, mail, an anchor, a relative path).
_SAFE_URL = re.compile(r"^(https?://|mailto:|#|[\w./-]+$)")


def _markdown_image(match: re.Match[str]) -> str:
    """`![alt](url)`: a card fetches nothing, so a picture by URL is shown as what it is,
    a marked link to the picture ("[image: alt]"); an embedded `data:image/` URI, which
    needs no fetch, is drawn (as the Image component's pictures are)."""
    alt, url = match.group(1), html.unescape(match.group(2))
    if url.startswith("data:image/"):
        return f'<img src="{esc(url)}" alt="{re.sub("<[^>]*>", "", alt)}">'
    if not _SAFE_URL.match(url):
        return match.group(0)
    return (f'<a class="image-ref" href="{esc(url)}" title="an image the card does not '
            f'fetch: {esc(url)}">[image: {alt or esc(url)}]</a>')


def _inline(text: str) -> str:
    codes: list[str] = []

    def keep(match: re.Match[str]) -> str:
        codes.append(f"<code>{esc(match.group(1))}</code>")
        return f"\x00{len(codes) - 1}\x00"

    text = esc(_INLINE_CODE.sub(keep, text))
    text = _BOLD.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", text)
    text = _ITALIC.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", text)

    def link(match: re.Match[str]) -> str:
        url = html.unescape(match.group(2))
        if not _SAFE_URL.match(url):
            return match.group(0)
        return f'<a href="{esc(url)}">{match.group(1)}</a>'

    text = _LINK.sub(link, _IMAGE.sub(_markdown_image, text))
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], text)


def markdown_html(source: str) -> str:
    """HTML of Markdown's common subset; anything else shows as the text it is."""
    out: list[str] = []
    lines = source.replace("\r\n", "\n").split("\n")
    paragraph: list[str] = []
    list_kind: str | None = None

    def flush_paragraph() -> None:
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    def close_list() -> None:
        nonlocal list_kind
        if list_kind:
            out.append(f"</{list_kind}>")
            list_kind = None

    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush_paragraph()
            close_list()
            code = []
            index += 1
            while index < len(lines) and not lines[index].strip().startswith("```"):
                code.append(lines[index])
                index += 1
            out.append(f"<pre><code>{esc(chr(10).join(code))}</code></pre>")
        elif not stripped:
            flush_paragraph()
            close_list()
        elif heading := re.match(r"^(#{1,6})\s+(.*?)\s*#*$", stripped):
            flush_paragraph()
            close_list()
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif re.match(r"^(-{3,}|\*{3,}|_{3,})$", stripped):
            flush_paragraph()
            close_list()
            out.append("<hr>")
        elif item := re.match(r"^([-*+]|\d+[.)])\s+(.*)$", stripped):
            flush_paragraph()
            kind = "ol" if item.group(1)[0].isdigit() else "ul"
            if list_kind != kind:
                close_list()
                out.append(f"<{kind}>")
                list_kind = kind
            out.append(f"<li>{_inline(item.group(2))}</li>")
        elif stripped.startswith(">"):
            flush_paragraph()
            close_list()
            out.append(f"<blockquote>{_inline(stripped.lstrip('> '))}</blockquote>")
        else:
            close_list()
            paragraph.append(stripped)
        index += 1
    flush_paragraph()
    close_list()
    return "".join(out)


_RENDERERS = {
    "markdown": _markdown, "table": _table, "image": _image, "artifact": _artifact,
    "progressBar": _progress, "error": _error, "vegaChart": _vega, "section": _section,
    "facts": _facts, "dag": _dag, "text": _text,
    "page": _section,  # Metaflow's outer container (a card's data, read back by the bridge)
}
