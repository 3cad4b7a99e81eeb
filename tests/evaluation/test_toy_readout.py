"""Toy world v2 in the trial's metrics: v2 truths in ``toy``, the v2 evaluator's read-outs in ``toy2``
(pattern, Janus, the read-out kept for diversity), and what happens without the v2 evaluator."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from sdbench.cameras import CameraConfig, Cameras
from sdbench.evaluation import toy
from sdbench.evaluation.appearance import gaussian_blur
from sdbench.evaluation.base import EvalContext, Notice
from sdbench.evaluation.diversity import READOUT_FILE, diversity_of, load_readout
from sdbench.evaluation.toy_metrics import ToyGroundTruth
from sdbench.evaluation.toy_readout import ToyReadout
from sdbench.representations.base import RenderOutput, Representation
from sdbench.world.scenes import COLOURS, PATTERNS, SHAPES, render_scene


class V2Object(Representation):
    """Renders a true v2 object. ``two_faced``: every camera behind the object (|azimuth| > 90°) sees
    the front instead, so the face shows from the back too; ``blur``: Gaussian σ in pixels."""

    def __init__(self, shape, colour, pattern="plain", marking=None, two_faced=False, blur=0.0, is_3d=True):
        super().__init__(None, 32)
        self.shape, self.colour, self.pattern, self.marking = shape, colour, pattern, marking
        self.two_faced, self.blur, self.is_3d = two_faced, blur, is_3d

    def render(self, cameras, height, width):
        if not self.is_3d:  # the front at 15° elevation from every camera, as one picture
            n = len(cameras)
            cameras = Cameras(torch.zeros(n), torch.full((n,), 15.0), torch.full((n,), 3.0), torch.full((n,), 40.0))
        az = cameras.azimuth
        if self.two_faced:
            az = torch.where(az.abs() > 90, az - 180 * torch.sign(az), az)
        cams = Cameras(az, cameras.elevation, cameras.radius, cameras.fovy)
        out = render_scene(self.shape, self.colour, cams, height, pattern=self.pattern, marking=self.marking)
        alpha = out.alpha if self.is_3d else torch.ones_like(out.alpha)
        return RenderOutput(gaussian_blur(out.rgb, self.blur).clamp(0, 1), alpha)

    def parameter_groups(self):
        return []


def context(rep, prompt, views=8):
    cams = Cameras.orbit(views if rep.is_3d else 1, elevation=15.0)
    return EvalContext(prompt, SimpleNamespace(device=torch.device("cpu")), rep, cams, rep.render(cams, 32, 32), seed=0)


class FakeReadout:
    """Stands in for the v2 evaluator where the test needs it to see right: a face is visible in a
    view when at least 2 pixels are near-black (the face colour is 0.08, shaded lower); the pattern is
    the prompt's own (``pattern``); shape and colour red cube."""

    def __init__(self, pattern="plain"):
        self.pattern = pattern

    def __call__(self, images, scorer=None):
        n = images.shape[0]
        dark = (images.amax(1) < 0.2).flatten(1).sum(1) >= 2
        marking = torch.stack([(~dark).float(), dark.float()], 1)
        one_hot = lambda i, k: torch.nn.functional.one_hot(torch.full((n,), i), k).float()  # noqa: E731
        probs = {
            "shape": one_hot(SHAPES.index("cube"), len(SHAPES)),
            "colour": one_hot(list(COLOURS).index("red"), len(COLOURS)),
            "pattern": one_hot(PATTERNS.index(self.pattern), len(PATTERNS)),
            "marking": marking,
        }
        embedding = torch.nn.functional.normalize(images.flatten(1)[:, :16], dim=1)
        pick = {k: v.argmax(1) for k, v in probs.items()}
        return toy.Attributes(pick["shape"], pick["colour"], pick["pattern"], pick["marking"], probs, embedding)


def test_the_toy_metric_scores_a_v2_object_against_its_v2_truth():
    metric = ToyGroundTruth(ToyGroundTruth.Config(views=4, cameras=CameraConfig(elevation=(0.0, 40.0))))
    prompt = "a red striped cube with a face"
    ctx = context(V2Object("cube", "red", "striped", "face"), prompt, views=4)
    assert metric.applies(ctx) is None
    m = metric.compute(ctx)
    assert m["toy_iou"] > 0.99 and abs(m["toy_chroma_error"]) < 1e-4 and m["toy_delta_e"] < 1e-4
    assert m["toy_detail"] == pytest.approx(1.0, abs=1e-5) and m["toy_noise"] < 1e-6
    assert "toy_acc" not in m and "toy_view_consistency" not in m  # the v1 evaluator never saw stripes or faces
    # the truth has the stripes: a plain object, or a blurred striped one, has less detail
    plain = metric.compute(context(V2Object("cube", "red", marking="face"), prompt, views=4))
    blurred = metric.compute(context(V2Object("cube", "red", "striped", "face", blur=1.0), prompt, views=4))
    assert plain["toy_detail"] < 0.5 and blurred["toy_detail"] < 0.5
    # 2D: at its best-matching pose, against the patterned truth
    m2 = metric.compute(context(V2Object("cube", "red", "striped", is_3d=False), "a red striped cube"))
    assert m2["toy_detail"] == pytest.approx(1.0, abs=1e-3) and abs(m2["toy_chroma_error"]) < 0.5, m2
    # v1 prompts are scored as before; an open colour or shape has no single truth
    assert "toy_acc" in metric.compute(context(V2Object("cube", "red"), "a red cube", views=4))
    assert "no single true object" in metric.applies(context(V2Object("cube", "red"), "a cube", views=4))


def test_janus_through_the_trial_metric_passes_the_true_object_and_fails_a_two_faced_one(evaluator_v2, monkeypatch):
    monkeypatch.setattr(toy, "read_attributes", FakeReadout())
    metric = ToyReadout(ToyReadout.Config(views=4))
    prompt = "a red cube with a face"
    one = metric.compute(context(V2Object("cube", "red", marking="face"), prompt))
    two = metric.compute(context(V2Object("cube", "red", marking="face", two_faced=True), prompt))
    # orbit of 8 at 15°: the face is visible at 0 and ±45°, hidden at ±135° and 180°, ±90° undecided
    assert one["toy2_janus_two_faced"] == 0.0 and one["toy2_janus_false_front"] == 0.0 and one["toy2_janus_agreement"] == 1.0
    assert two["toy2_janus_two_faced"] == 1.0 and two["toy2_janus_false_front"] == 1.0 and two["toy2_janus_agreement"] == 0.5
    assert one["toy2_janus_missed_front"] == 0.0
    # no marking in the prompt, or a 2D image (no orbit): no Janus keys
    assert not any(k.startswith("toy2_janus") for k in metric.compute(context(V2Object("cube", "red"), "a red cube")))
    flat = context(V2Object("cube", "red", marking="face", is_3d=False), prompt)
    assert not any(k.startswith("toy2_janus") for k in metric.compute(flat))


def test_the_pattern_read_out_and_the_stated_attributes(evaluator_v2, monkeypatch):
    monkeypatch.setattr(toy, "read_attributes", FakeReadout("striped"))
    metric = ToyReadout(ToyReadout.Config(views=4))
    m = metric.compute(context(V2Object("cube", "red", "striped"), "a red striped cube"))
    assert m["toy2_pattern_acc"] == m["toy2_pattern_prob"] == m["toy2_shape_acc"] == m["toy2_colour_acc"] == m["toy2_acc"] == 1.0
    wrong = metric.compute(context(V2Object("cube", "red", "striped"), "a blue dotted cube"))
    assert wrong["toy2_pattern_acc"] == wrong["toy2_colour_acc"] == wrong["toy2_acc"] == 0.0 and wrong["toy2_shape_acc"] == 1.0
    open_colour = metric.compute(context(V2Object("cube", "red", "striped"), "a striped cube"))
    assert "toy2_colour_acc" not in open_colour and open_colour["toy2_acc"] == 1.0


def test_the_read_out_kept_for_diversity_is_the_orbit_views(evaluator_v2):
    metric = ToyReadout(ToyReadout.Config(views=4))
    ctx = context(V2Object("cube", "red"), "a cube")  # ambiguous: only the read-outs apply
    assert metric.applies(ctx) is None and ToyGroundTruth(ToyGroundTruth.Config()).applies(ctx)
    m = metric.compute(ctx)
    kept = ctx.files[READOUT_FILE]
    scorer = toy.load_evaluator("cpu", str(evaluator_v2))
    torch.testing.assert_close(kept["embedding"], toy.embed(ctx.views.rgb, scorer))
    assert kept["probs.pattern"].shape == (8, len(PATTERNS)) and kept["probs.marking"].shape == (8, 2)
    assert 0.0 <= m["toy2_pattern_prob"] <= 1.0 and "toy2_shape_acc" in m and "toy2_colour_acc" not in m
    assert metric.applies(context(V2Object("cube", "red"), "a dragon")).startswith("the prompt is not a toy-world prompt")


def run_image_trial(prior_dir, out, prompt, seed=0, metrics=("toy", "toy2")):
    from sdbench import trial
    from sdbench.budget import Budget

    cfg = trial.TrialConfig(
        prompt=prompt,
        loss="sds",
        representation="image",
        prior=str(prior_dir),
        seed=seed,
        budget=Budget("steps", 2),
        metrics=metrics,
    )
    return trial.run_trial(trial.resolve(cfg), out, progress=False)


def test_a_trial_without_the_v2_evaluator_omits_its_keys_and_says_so_once(tiny_pixel_checkpoint, tmp_path, monkeypatch):
    from sdbench.errors import UserError

    monkeypatch.setattr(toy, "EVALUATOR_V2_DIR", tmp_path / "missing")
    result = run_image_trial(tiny_pixel_checkpoint, tmp_path / "t", "a red striped cube", metrics=("all",))
    assert result.completed and "toy_chroma_error" in result.metrics  # the v2 truth (striped) still scores it
    assert not any(k.startswith("toy2_") for k in result.metrics)
    said = [w for w in result.warnings if "v2 evaluator" in w]
    assert len(said) == 1 and said[0].startswith("metric toy2 omitted: ") and "train_evaluator --world v2" in said[0]
    assert not (tmp_path / "t" / READOUT_FILE).exists()
    assert isinstance(ToyReadout(ToyReadout.Config()).applies(context(V2Object("cube", "red"), "a cube")), Notice)
    with pytest.raises(UserError, match="metric toy2 cannot run"):  # asked for by name, it is an error
        run_image_trial(tiny_pixel_checkpoint, tmp_path / "named", "a red striped cube")


def test_trials_keep_their_read_out_and_the_report_computes_diversity(tiny_pixel_checkpoint, evaluator_v2, tmp_path, monkeypatch):
    from sdbench.report import build_report

    sweep = tmp_path / "sweep"
    for seed in (0, 1, 2):
        r = run_image_trial(tiny_pixel_checkpoint, sweep / "trials" / f"cube-s{seed}", "a cube", seed, metrics=("all",))
        assert r.completed and "toy2_pattern_prob" in r.metrics and "toy_chroma_error" not in r.metrics
        embedding, probs = load_readout(sweep / "trials" / f"cube-s{seed}")
        assert embedding.shape == (1, 16) and set(probs) == {"shape", "colour", "pattern"}
    # the same prompt with a second loss whose trials lack the read-out (evaluated without the v2 evaluator)
    for seed in (0, 1):
        d = sweep / "trials" / f"vdm-s{seed}"
        d.mkdir(parents=True)
        result = json.loads((sweep / "trials" / f"cube-s{seed}" / "result.json").read_text())
        (d / "result.json").write_text(json.dumps({**result, "loss": "vdm"}))
    build_report(sweep, fid=False)
    rows = (sweep / "diversity.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[0].startswith("prior,loss,representation,budget,prompt,seeds,diversity_distance")
    dirs = [sweep / "trials" / f"cube-s{s}" for s in (0, 1, 2)]
    expected = diversity_of(dirs)
    assert rows[1].split(",")[1:6] == ["sds", "image", "steps:2", "a cube", "3"]
    assert float(rows[1].split(",")[6]) == pytest.approx(expected["diversity_distance"])
    html = (sweep / "report.html").read_text()
    assert "Diversity across seeds" in html and html.count("Diversity left out for 1 (group, ambiguous prompt) set:") == 1
    # the same trial twice is one mode: zero
    assert diversity_of([dirs[0], dirs[0]])["diversity_distance"] == 0.0
