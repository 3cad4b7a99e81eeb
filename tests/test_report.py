"""report.html as a reader sees it: number precision, pixel-art views, sortable tables, the per-prompt
section, and (in headless Chromium) no horizontal overflow at 1280 px and no broken image."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import pytest
from PIL import Image

from sdbench import report_html as H
from sdbench.report import build_report
from tests import browser


# ------------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    "mean, ci, expected",
    [
        (1207.3, 523.8, "1207 ± 520"),  # the example: was "1207 ± 5.2e+02"
        (1207.0, 520.0, "1207 ± 520"),
        (0.0931, 0.0302, "0.093 ± 0.030"),  # the trailing zero of the half-width is kept
        (84.09, 5.7, "84.1 ± 5.7"),
        (0.6045, 0.32, "0.60 ± 0.32"),
        (0.0931, 0.0997, "0.09 ± 0.10"),  # the half-width rounds up into the next decade: one decimal fewer
        (-0.0004, 0.03, "0.000 ± 0.030"),  # no "-0.000"
        (4.093, 6.2, "4.1 ± 6.2"),
        (12345.6, 7.0, "12345.6 ± 7.0"),
        (5.0, 0.0, "5"),  # one value: no ±
        (3.0, 1e-17, "3"),  # equal values, floating-point noise in the spread
        (60.0, None, "60"),
        (float("nan"), 1.0, "—"),
        (2.0, float("nan"), "2"),
    ],
)
def test_fmt_ci_rounds_to_the_digits_the_half_width_supports(mean, ci, expected):
    assert H.fmt_ci(mean, ci) == expected


@pytest.mark.parametrize(
    "x, expected",
    [(1207.3, "1207"), (0.02109, "0.02109"), (60, "60"), (1.0, "1"), (0.0, "0"), (12345678.0, "1.235e+7"),
     (0.0001234, "1.234e-4"), (-2.5, "-2.5"), (float("inf"), "—"), (None, "—")],
)  # fmt: skip
def test_fmt_value(x, expected):
    assert H.fmt_value(x) == expected


# -------------------------------------------------------------------- images
def png(w: int, h: int, colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="PNG")
    return buf.getvalue()


def test_image_size_reads_png_and_gif_headers(tmp_path):
    assert H.image_size(png(32, 20)) == (32, 20)
    buf = io.BytesIO()
    Image.new("RGB", (7, 5)).save(buf, format="GIF")
    assert H.image_size(buf.getvalue()) == (7, 5)
    assert H.image_size(b"not an image at all, no header") is None


def test_small_views_are_enlarged_by_a_whole_factor(tmp_path):
    for size, shown in [(32, 96), (64, 64), (128, 128), (20, 80)]:
        p = tmp_path / f"v{size}.png"
        p.write_bytes(png(size, size))
        tag = H.img(p, "a <view>")
        assert f"width='{shown}' height='{shown}'" in tag and "class='view'" in tag, tag
        assert "a &lt;view&gt;" in tag
    (tmp_path / "bad.png").write_bytes(b"garbage")
    assert "missing" in H.img(tmp_path / "bad.png", "x") and "missing" in H.img(tmp_path / "absent.png", "x")
    assert "image-rendering: pixelated" in H.CSS


def test_table_escapes_text_and_carries_sort_keys():
    out = H.table(["loss", H.header_label("toy_colour_error")], [[H.text("<b>sds</b>"), H.number(0.0931, 0.0302)]])
    assert "&lt;b&gt;sds&lt;/b&gt;" in out and "<b>sds" not in out
    assert "toy_<wbr>colour_<wbr>error" in out
    assert "data-sort='0.0931'" in out and "0.093 ± 0.030" in out and "class='num'" in out
    assert out.startswith("<div class='scroll'><table class='sortable'>")
    missing = H.table(["x"], [[H.number(math.nan)]])
    assert "data-sort=''" in missing and "—" in missing


# ------------------------------------------------------------------ a report
METRICS = ["toy_acc", "toy_colour_error", "toy_iou", "clip_toy", "denoise_mse"] + [
    f"toy_extra_metric_with_a_long_name_{i}" for i in range(14)
]  # wide enough that the quality table has to scroll inside its box at 1280 px
PROMPTS = ["a red cube", "a blue sphere", "a yellow cone seen from a rather long way off on a windy day"]


def fake_sweep(root: Path) -> Path:
    """A sweep folder as the runner leaves it: 3 prompts × 2 losses × 2 representations × 2 seeds, 8 views
    of 32 × 32 per trial, one failed trial with a long unbroken error."""
    out = root / "sweep"
    n = 0
    for p, prompt in enumerate(PROMPTS):
        for loss in ("sds", "vdm"):
            for rep in ("image", "gaussians"):
                for seed in (0, 1):
                    n += 1
                    d = out / "trials" / f"t{n:02d}-{loss}-{rep}-s{seed}"
                    (d / "views").mkdir(parents=True)
                    for v in range(8 if rep == "gaussians" else 1):
                        (d / "views" / f"{v:03d}.png").write_bytes(png(32, 32, (40 * p, 20 * v, 100 + 50 * seed)))
                    metrics = {m: 1000.0 * (k + 1) + 37.0 * n for k, m in enumerate(METRICS)}
                    metrics["clip_toy"] = 10.0 + 10.0 * seed + 5.0 * (loss == "vdm") + p + 2.0 * (rep == "gaussians")
                    result = {
                        "prompt": prompt,
                        "loss": loss,
                        "representation": rep,
                        "prior": "toy",
                        "seed": seed,
                        "budget": {"kind": "steps", "value": 30.0},
                        "status": "completed",
                        "error": None,
                        "metrics": metrics,
                        "cost": {"seconds": 1.5 + n, "steps": 30, "nfe": 60, "seconds_per_step": 0.05, "peak_memory_mb": 1083.0},
                    }
                    (d / "result.json").write_text(json.dumps(result))
    d = out / "trials" / "t99-nan-image-s0"
    d.mkdir(parents=True)
    failed = {"prompt": PROMPTS[0], "loss": "nan", "representation": "image", "prior": "toy", "seed": 0}
    failed |= {"budget": {"kind": "steps", "value": 30.0}, "status": "failed", "error": "x" * 3000, "metrics": {}, "cost": {}}
    (d / "result.json").write_text(json.dumps(failed))
    build_report(out, fid=False)
    return out / "report.html"


def test_per_prompt_section_shows_every_loss_with_its_views_and_metrics(tmp_path):
    text = fake_sweep(tmp_path).read_text()
    assert "1207 ± 5.2e+02" not in text and not re.search(r"± [0-9.]+e[+-]", text)
    section = text[text.index('<h2 id="prompts">Per prompt</h2>') :]
    for prompt in PROMPTS:
        assert f">{prompt}</h3>" in section
    cube = next(part for part in section.split("<h3") if ">a red cube</h3>" in part)
    assert cube.count("<tr>") == 1 + 4  # header + sds/vdm × image/gaussians
    assert cube.count("<img class='view'") == 2 * 1 + 2 * 8  # lowest seed: 1 view (image), 8 (gaussians)
    assert "alt='a red cube: sds · gaussians, seed 0, view 7'" in cube
    # clip_toy of "a red cube", sds · gaussians over seeds 0 and 1: 12, 22 → 17 ± t(.975, 1) · 10/√2 / √2 = 63.5
    row = next(r for r in cube.split("<tr>") if r.startswith("<td data-sort='sds'") and ">gaussians<" in r)
    assert "17 ± 64" in row


@pytest.fixture(scope="module")
def chromium():
    path = browser.find_chromium()
    if path is None:
        pytest.skip(
            f"no Chromium found (${browser.ENV} or one of {', '.join(browser.CANDIDATES)} on PATH); "
            "install Debian's: apt-get install chromium (.ci/run does this when it runs as root)"
        )
    return path


def test_probe_catches_overflow_and_broken_images(tmp_path, chromium):
    """The browser checks below can fail: a page that is too wide with a broken image is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><html><body><div style='width:2000px'>wide</div>"
        "<img src='data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB' alt='broken'></body></html>"
    )
    m = browser.probe(bad)
    assert m["innerWidth"] == 1280 and m["scrollWidth"] > m["clientWidth"]
    assert [(i["alt"], i["naturalWidth"]) for i in m["images"]] == [("broken", 0)]


def test_report_fits_1280px_has_no_broken_image_and_sorts(tmp_path, chromium):
    report = fake_sweep(tmp_path)
    m = browser.probe(report, width=1280, sort_column="clip_toy")
    assert m["innerWidth"] == 1280
    assert m["scrollWidth"] <= m["clientWidth"], f"page wider than the window: {m['overflowing'][:10]}"
    assert any(sw > cw for sw, cw in m["scroll_boxes"])  # the quality table is wider: it scrolls inside its box
    images = m["images"]
    assert len(images) == 5 + len(PROMPTS) * (2 + 16)  # 5 plots; per prompt 2 × 1 + 2 × 8 views
    broken = [i["alt"] for i in images if not (i["complete"] and i["naturalWidth"] > 0)]
    assert not broken, broken
    views = [i for i in images if i["cls"] == "view"]
    assert all(i["naturalWidth"] == 32 and i["width"] == 96 and i["rendering"] == "pixelated" for i in views), views[:3]
    # clicking a header sorts by it; clicking again reverses
    s = m["sorted"]
    assert s is not None, "no sortable column 'clip_toy' found"
    values = [float(v) for v in s["before"]]
    assert [float(v) for v in s["first"]] == sorted(values) and s["first_aria"] == "ascending"
    assert [float(v) for v in s["second"]] == sorted(values, reverse=True) and s["second_aria"] == "descending"
    assert sorted(values) != values  # the click did reorder something
