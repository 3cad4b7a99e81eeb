"""Headless Chromium for the report tests: find the browser, measure a page, take a screenshot.

``probe(page)`` copies the page with a small script added that, once everything has loaded, measures the
layout, the images and a click on a sortable column, and writes the numbers into the document as JSON;
Chromium's ``--dump-dom`` prints that document and we read the JSON back. No driver, no network.

Screenshot of a report (docs/images/report.png: the top and the per-prompt section)::

    python -m tests.browser REPORT.html OUT.png 860 prompts:700
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
ENV = "SDBENCH_CHROMIUM"
"""Environment variable naming the browser binary, tried before the names in ``CANDIDATES``."""

PROBE_JS = """
window.addEventListener("load", function () {
  var doc = document.documentElement;
  var out = {
    innerWidth: window.innerWidth, clientWidth: doc.clientWidth, scrollWidth: doc.scrollWidth,
    images: Array.prototype.map.call(document.images, function (i) {
      return {alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight,
              width: i.width, height: i.height, cls: i.className, rendering: getComputedStyle(i).imageRendering};
    }),
    overflowing: [], sorted: null,
    scroll_boxes: Array.prototype.map.call(document.querySelectorAll(".scroll"), function (e) {
      return [e.scrollWidth, e.clientWidth];
    }),
    scrollHeight: doc.scrollHeight, anchors: {}
  };
  document.querySelectorAll("[id]").forEach(function (e) {
    out.anchors[e.id] = e.getBoundingClientRect().top + window.scrollY;
  });
  // elements sticking out of the window (for the failure message)
  document.querySelectorAll("body *").forEach(function (e) {
    var box = e.parentElement.closest(".scroll");
    if (box && getComputedStyle(box).overflowX !== "visible") return;  // clipped by its scrolling box
    var r = e.getBoundingClientRect();
    if (r.right > doc.clientWidth + 0.5) out.overflowing.push(e.tagName + "." + e.className + " right=" + r.right);
  });
  // click a sortable column twice: the values of that column after each click
  var table = document.querySelector("table.sortable");
  if (table && SORT_COLUMN) {
    var heads = table.tHead.rows[0].cells, col = -1;
    for (var k = 0; k < heads.length; k++) if (heads[k].textContent.trim() === SORT_COLUMN) col = k;
    if (col >= 0) {
      var column = function () {
        return Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[col].getAttribute("data-sort"); });
      };
      out.sorted = {column: SORT_COLUMN, before: column()};
      heads[col].click(); out.sorted.first = column(); out.sorted.first_aria = heads[col].getAttribute("aria-sort");
      heads[col].click(); out.sorted.second = column(); out.sorted.second_aria = heads[col].getAttribute("aria-sort");
    }
  }
  var pre = document.createElement("pre");
  pre.id = "sdbench-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


def find_chromium() -> str | None:
    """The browser binary: ``$SDBENCH_CHROMIUM`` if set, else the first of ``CANDIDATES`` on ``PATH``."""
    if os.environ.get(ENV):
        return shutil.which(os.environ[ENV]) or os.environ[ENV]
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(chromium: str, args: list[str], url: str, width: int, height: int, profile: Path) -> subprocess.CompletedProcess:
    cmd = [
        chromium,
        "--headless=new",
        "--no-sandbox",  # tests and CI run as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",  # a private profile: runs in parallel do not share one
        f"--window-size={width},{height}",
        *args,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def probe(page: Path, width: int = 1280, height: int = 900, sort_column: str = "") -> dict[str, Any]:
    """Open ``page`` in headless Chromium at ``width`` × ``height`` and return the probe's measurements."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("no chromium found")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "page.html"
        script = PROBE_JS.replace("SORT_COLUMN", json.dumps(sort_column))
        text = Path(page).read_text(encoding="utf-8")
        head, _, tail = text.rpartition("</body>")
        copy.write_text(f"{head}<script>{script}</script></body>{tail}", encoding="utf-8")
        proc = _run(chromium, ["--virtual-time-budget=10000", "--dump-dom"], copy.as_uri(), width, height, Path(tmp) / "profile")
    match = re.search(r'<pre id="sdbench-probe">(.*?)</pre>', proc.stdout, re.S)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"chromium gave no measurements (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(html.unescape(match.group(1)))


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 1800) -> Path:
    """A PNG of the top ``width`` × ``height`` pixels of ``page``."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("no chromium found")
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--hide-scrollbars", "--virtual-time-budget=10000", f"--screenshot={out}"]
        proc = _run(chromium, args, Path(page).resolve().as_uri(), width, height, Path(tmp) / "profile")
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium took no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return out


def main(argv: list[str]) -> None:
    """``REPORT OUT.png [[ID:]HEIGHT ...]``: bands of the page, each ``HEIGHT`` pixels from its top or from the
    element with id ``ID``, stacked into one PNG with a grey rule between them and reduced to 256 colours."""
    from PIL import Image

    page, out, parts = Path(argv[0]), Path(argv[1]), argv[2:] or ["1800"]
    anchors = probe(page)["anchors"]
    bands = []
    for part in parts:
        name, _, height = part.rpartition(":")
        top = max(0, int(anchors[name]) - 12) if name else 0
        bands.append((top, top + int(height)))
    with tempfile.TemporaryDirectory() as tmp:
        full = Image.open(screenshot(page, Path(tmp) / "page.png", height=max(b for _, b in bands))).convert("RGB")
    shots = [full.crop((0, a, full.width, b)) for a, b in bands]
    rule = 6
    sheet = Image.new("RGB", (full.width, sum(s.height for s in shots) + rule * (len(shots) - 1)), (160, 160, 160))
    y = 0
    for s in shots:
        sheet.paste(s, (0, y))
        y += s.height + rule
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"{out}: {sheet.width} x {sheet.height}, {out.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(sys.argv[1:])
