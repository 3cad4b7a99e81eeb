"""HTML pieces of ``report.html``: number formatting, embedded pixel-art views, sortable tables, the page.

Presentation only. Every function takes plain values (strings, numbers, paths) and returns HTML text;
which numbers go where is decided in :mod:`sdbench.report`. The page works offline: images are
``data:`` URIs and the table sorting is a few lines of inline JavaScript (no CDN, no library).

Layout rules, checked in headless Chromium by ``tests/test_report_browser.py``: nothing is wider than a
1280 px window (a wide table scrolls inside its own ``.scroll`` box), and small renders are enlarged by a
whole factor with ``image-rendering: pixelated``, so a 32 × 32 view shows its pixels, not a blur.
"""

from __future__ import annotations

import base64
import html
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

MISSING = "—"
VIEW_PX = 96
"""Display size a view is enlarged towards (a whole multiple of its own size, at least 1×)."""


# ------------------------------------------------------------------- numbers
def fmt_value(x: float) -> str:
    """A number without an uncertainty: 4 significant digits, whole numbers from 1000 up, no exponent
    between 1e-3 and 1e7 (``1207``, ``0.02109``, ``60``); ``—`` when not finite."""
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return MISSING
    if x == 0:
        return "0"
    if abs(x) >= 1e7 or abs(x) < 1e-3:
        return f"{x:.3e}".replace("e+0", "e+").replace("e-0", "e-")
    if abs(x) >= 1000:
        return f"{x:.0f}"
    return f"{x:.4g}"


def fmt_ci(mean: float, ci: float | None = None) -> str:
    """``mean ± ci`` at the precision the confidence half-width supports.

    The half-width is rounded to 2 significant digits and the mean to the same decimal place, but
    never to tens or beyond (a mean keeps its units digit): ``(1207.3, 523.8)`` → ``1207 ± 520``,
    ``(0.0931, 0.0302)`` → ``0.093 ± 0.030``. Without a positive finite ``ci``: :func:`fmt_value`.
    """
    if not isinstance(mean, (int, float)) or not math.isfinite(mean):
        return MISSING
    if ci is None or not math.isfinite(ci) or ci <= 1e-9 * max(abs(mean), 1e-300):
        return fmt_value(mean)  # no spread, or only rounding noise between equal values
    ci2 = round(ci, 1 - math.floor(math.log10(ci)))  # 2 significant digits (may round up to the next decade)
    decimals = max(0, 1 - math.floor(math.log10(ci2)))
    m = f"{mean:.{decimals}f}"
    if float(m) == 0:
        m = m.lstrip("-")  # "-0.00" → "0.00"
    return f"{m} ± {ci2:.{decimals}f}"


# -------------------------------------------------------------------- images
def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's or GIF's header; ``None`` for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", data[6:10])
    return None


def img(path: Path, alt: str, size: int = VIEW_PX, cls: str = "view") -> str:
    """``path`` embedded as a ``data:`` URI, enlarged by the whole factor that brings its height nearest
    to ``size`` from below (at least 1×); ``—`` when the file is missing or not a PNG/GIF."""
    path = Path(path)
    if not path.is_file():
        return f"<span class='missing'>{MISSING}</span>"
    data = path.read_bytes()
    wh = image_size(data)
    if wh is None:
        return f"<span class='missing'>{MISSING}</span>"
    w, h = wh
    k = max(1, size // max(h, 1))
    kind = "gif" if data[:3] == b"GIF" else "png"
    src = base64.b64encode(data).decode()
    return f"<img class='{cls}' src='data:image/{kind};base64,{src}' alt='{html.escape(alt)}' width='{w * k}' height='{h * k}'>"


def views(paths: Sequence[Path], alt: str, size: int = VIEW_PX) -> str:
    """A wrapping row of views (``alt`` numbered per view)."""
    if not paths:
        return f"<span class='missing'>{MISSING}</span>"
    tags = "".join(img(p, f"{alt}, view {i}", size) for i, p in enumerate(paths))
    return f"<div class='views'>{tags}</div>"


def plot_img(png: bytes, alt: str) -> str:
    """A matplotlib figure (smoothly scaled down when the window is narrower than the figure)."""
    return f"<img class='plot' src='data:image/png;base64,{base64.b64encode(png).decode()}' alt='{html.escape(alt)}'>"


# -------------------------------------------------------------------- tables
class Cell(NamedTuple):
    """One table cell: its HTML and the value a click on the column header sorts by (``None``: last)."""

    html: str
    sort: float | str | None = None
    numeric: bool = False


def text(value: str) -> Cell:
    return Cell(html.escape(value), value)


def number(mean: float, ci: float | None = None) -> Cell:
    ok = isinstance(mean, (int, float)) and math.isfinite(mean)
    return Cell(fmt_ci(mean, ci), float(mean) if ok else None, numeric=True)


def raw(markup: str, sort: float | str | None = None) -> Cell:
    """Prepared HTML (an image, a cell with a note); not escaped."""
    return Cell(markup, sort)


def header_label(name: str) -> str:
    """A column name that may break after underscores and dots, so a long metric name wraps."""
    return html.escape(name).replace("_", "_<wbr>").replace(".", ".<wbr>")


def table(head: Sequence[str], body: Sequence[Sequence[Cell]], sortable: bool = True, cls: str = "") -> str:
    """A table in a horizontally scrolling box; ``head`` is HTML (see :func:`header_label`).

    With ``sortable``, clicking a header (or Enter on it) sorts the rows by that column, again to reverse.
    """
    classes = " ".join(c for c in ("sortable" if sortable else "", cls) if c)
    ths = "".join(f"<th scope='col'>{h}</th>" for h in head)
    rows = []
    for row in body:
        tds = []
        for c in row:
            attrs = " class='num'" if c.numeric else ""
            if c.sort is not None:
                attrs += f" data-sort='{html.escape(repr(c.sort) if isinstance(c.sort, float) else str(c.sort))}'"
            elif sortable:
                attrs += " data-sort=''"
            tds.append(f"<td{attrs}>{c.html}</td>")
        rows.append(f"<tr>{''.join(tds)}</tr>")
    return (
        f"<div class='scroll'><table class='{classes}'><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


# ---------------------------------------------------------------------- page
CSS = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0 auto;
       padding: 1.2em 1.25em; max-width: 1500px; line-height: 1.4; }
h1 { font-size: 1.6em; margin: 0 0 .3em; }
h2 { font-size: 1.25em; margin: 1.8em 0 .5em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
h3 { font-size: 1.05em; margin: 1.4em 0 .4em; }
.note { color: #555; font-size: 13px; max-width: 75em; }
.scroll { overflow-x: auto; max-width: 100%; margin-bottom: 1.2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d5d5d5; padding: 4px 6px; font-size: 13px; vertical-align: middle; }
thead th { background: #f3f3f3; text-align: center; font-weight: 600; }
td { text-align: left; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.sortable thead th:hover { background: #e6e6e6; }
table.sortable thead th:hover::after { content: "\\00A0\\2195"; color: #888; font-weight: normal; }
table.sortable thead th[aria-sort="ascending"]::after { content: "\\00A0\\25B2"; color: #333; }
table.sortable thead th[aria-sort="descending"]::after { content: "\\00A0\\25BC"; color: #333; }
img.view { image-rendering: pixelated; display: block; background: #fff; }
img.plot { max-width: 100%; height: auto; display: block; margin-bottom: .8em; }
.views { display: flex; flex-wrap: wrap; gap: 3px; max-width: calc(4 * (96px + 3px)); }
.missing { color: #999; }
.failed li { overflow-wrap: anywhere; margin-bottom: .3em; }
code { overflow-wrap: anywhere; }
nav.toc { font-size: 13px; }
nav.toc a { margin-right: 1em; }
"""

SORT_JS = """
(function () {
  function key(row, col) {
    var s = row.cells[col].getAttribute("data-sort");
    if (s === null || s === "") return null;
    var n = Number(s);
    return isNaN(n) ? s.toLowerCase() : n;
  }
  function compare(a, b, dir) {
    if (a === null || b === null) return (a === null) - (b === null);  // missing values last, either way
    if (typeof a !== typeof b) return typeof a === "number" ? -1 : 1;
    return dir * (a < b ? -1 : a > b ? 1 : 0);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.tabIndex = 0;
      function sort() {
        var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) { return compare(key(a, col), key(b, col), dir); });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
      });
    });
  });
})();
"""


def page(title: str, body: str) -> str:
    """The whole document: ``body`` (HTML) under an ``<h1>`` of ``title``, with the style sheet and script inline."""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n<script>{SORT_JS}</script>\n</body></html>\n"
    )
