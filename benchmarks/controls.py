"""Positive controls of toy world v2 (issue 16, Deliver 4), exactly as pre-registered in ``docs/controls.md``.

    python -m benchmarks.controls                 # the four controls, the pre-registered design
    python -m benchmarks.controls --only a,d      # some of them (a second process can run the others)
    python -m benchmarks.controls --quick         # smoke test of the code path: NOT a control run
    python -m benchmarks.controls --trials-only   # the SDS trials only, before the v2 evaluator exists;
                                                  # the plain command then scores them (no re-run)
    python -m benchmarks.controls --label v21 --prior FOLDER --work runs/controls-v21
                                                  # another world version's run, written beside the first
    python -m benchmarks.controls --design 3 --label v21_a3 --prior FOLDER --work runs/controls-v21
                                                  # amendment 3: the first-written seeds as a second look
                                                  # (verdicts on 97.5 % intervals), reusing amendment 1's trials
    python -m benchmarks.controls --design 4 --only b --label v21_a4 --prior FOLDER --work runs/controls-v21
                                                  # amendment 4: the CFG attempt at (b), SDS at CFG 100

(a) SDS at CFG 100 over-saturates (vs SDS at CFG 7.5 and vs the prior's samples); (b) SDS at CFG 7.5
over-smooths (vs the prior's samples); (c) SDS on 3D Gaussians gives two-faced objects, fewer with
view-dependent prompts; (d) SDS (CFG 100) mode-collapses on ambiguous prompts (vs the prior's samples).
The reference arm "prior samples" is DPM-Solver++, 50 steps, CFG 7.5, each sample scored like a 2D
trial (put into the ``image`` representation and evaluated by the same ``evaluate()``). Intervals:
prompt-cluster bootstrap of the paired difference (:mod:`sdbench.stats`), 10 000 resamples, seed 0; a
comparison passes when its 95 % interval excludes zero on the expected side; Holm-adjusted p-values
over the seven pass comparisons are reported beside them.

Writes ``benchmarks/results/controls.json`` and ``docs/images/control_{a_saturation,b_detail,c_janus,
d_diversity}.png`` (``--quick``: ``controls_quick.json`` and the pictures in the work folder). Each
trial and sample keeps its folder under ``--work`` (default ``runs/controls``): an interrupted run
resumes, finished trials are not run again. ``--only`` writes ``controls_<letters>.json`` instead; to
split the run over processes, run the parts with ``--only``, then the plain command once: it reuses every
finished trial and writes the whole ``controls.json`` (Holm over all seven comparisons).

Needs the trained v2 prior (``--prior toy2``, the default) and v2 evaluator; a missing one stops the
run before anything starts with one ``error:`` line. ``--prior PATH`` takes any local diffusers folder.

**Cost.** The design as amended (``docs/controls.md``, amendment 1; 1000 steps per SDS trial): 246 trials
(image: 60 in (a), 30 in (b), 66 in (d); 3D Gaussians: 60 in (c)) and 126 prior samples. Measured idle on
one thread of this project's 2-core AMD EPYC: image SDS 0.032 s/step, 3D Gaussians 0.044 s/step (one
100-step trial each, v2 prior), so about 2.3 core-hours of trials, more when the cores are shared. The
design first written (two seeds in (a)-(c), eight in (d) with a secondary S7.5 arm: 476 trials) was
estimated at ≈ 27 h on one core from a run on a machine at load average 6-7, ≈ 5 h idle. The controls
run independently (``--only``), so one process per core divides the wall time. Not measured on a GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import label_arg, labelled, save

DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"
REPO = Path(__file__).resolve().parent.parent
CONTROLS = ("a", "b", "c", "d")
PICTURES = {
    "a": "control_a_saturation.png",
    "b": "control_b_detail.png",
    "c": "control_c_janus.png",
    "d": "control_d_diversity.png",
}
PATTERN_CYCLE = ("striped", "checkered", "dotted")
ARM_LABEL = {
    "P": "prior samples",
    "S7.5": "SDS CFG 7.5",
    "S100": "SDS CFG 100",
    "G": "3DGS, no view words",
    "Gv": "3DGS, view words",
}


@dataclass(frozen=True)
class Design:
    """What the controls run (defaults: ``docs/controls.md``)."""

    prompts: dict[str, tuple[str, ...]]
    """Per control, its prompts."""
    seeds: dict[str, tuple[int, ...]]
    """Per control, its seeds."""
    steps: int = 1000
    """Optimisation steps of every SDS arm."""
    sample_steps: int = 50
    """DPM-Solver++ steps of the prior samples."""
    sample_cfg: float = 7.5
    """Guidance scale of the prior samples."""
    cfg_low: float = 7.5
    cfg_high: float = 100.0
    resamples: int = 10_000
    """Bootstrap resamples."""
    quick: bool = False
    """A smoke test of the code path, not a control run."""
    threads: int = 1
    """torch CPU threads of every trial (0: torch's default)."""
    d_secondary: bool = False
    """Run (d)'s secondary arm S7.5 (dropped by amendment 1 of ``docs/controls.md``)."""
    amendment: int = 1
    """The amendment of ``docs/controls.md`` whose design this is (1: one seed in (a)-(c), six in (d); 3: the
    seeds first written, two and eight, as a second look; 4: 3's, with (b) at CFG 100)."""
    confidence: float = 0.95
    """Coverage of the interval a verdict reads (amendment 3's second look: 0.975; the 95 % one is reported too)."""
    b_cfg: float = 7.5
    """Guidance scale of (b)'s SDS arm (amendment 4's CFG attempt: 100, the arm then named S100)."""


def prompts() -> dict[str, tuple[str, ...]]:
    """The pre-registered prompts of each control."""
    from sdbench.world.grammar import ambiguous_prompts, base_prompts
    from sdbench.world.scenes import COLOURS, SHAPES

    pairs = list(product(COLOURS, SHAPES))
    return {
        "a": tuple(base_prompts()),
        "b": tuple(f"a {c} {PATTERN_CYCLE[i % 3]} {s}" for i, (c, s) in enumerate(pairs)),
        "c": tuple(f"a {c} {s} with a face" for c, s in pairs),
        "d": tuple(ambiguous_prompts()),
    }


DESIGNS = (1, 3, 4)
"""The amendments of ``docs/controls.md`` whose design ``--design`` runs."""


def design(quick: bool = False, amendment: int = 1) -> Design:
    """The pre-registered design of ``amendment`` (``docs/controls.md``), or the smoke test's (``quick``)."""
    full = prompts()
    if amendment not in DESIGNS:
        raise ValueError(f"no design of amendment {amendment}; there are {DESIGNS}")
    b_cfg = 100.0 if amendment == 4 else 7.5  # amendment 4: (b) at CFG 100, the one CFG attempt
    if not quick and amendment in (3, 4):  # the seeds first written, as a second look read at 97.5 %; no S7.5 in (d)
        seeds = {"a": (0, 1), "b": (0, 1), "c": (0, 1), "d": tuple(range(8))}
        return Design(full, seeds, amendment=amendment, confidence=0.975, b_cfg=b_cfg)
    if not quick:  # amendment 1 of docs/controls.md: one seed in (a)-(c), six in (d), no S7.5 arm in (d)
        return Design(full, {"a": (0,), "b": (0,), "c": (0,), "d": tuple(range(6))})
    few = {k: v[::10] for k, v in full.items() if k != "d"}  # 3 prompts spread over colours and shapes
    few["d"] = ("a cube", "a red object")
    seeds = {"a": (0, 1), "b": (0, 1), "c": (0, 1), "d": (0, 1, 2)}
    return Design(few, seeds, steps=100, sample_steps=20, quick=True, d_secondary=True, b_cfg=b_cfg)


# ------------------------------------------------------------------------------------------- arms
@dataclass
class Runner:
    """Runs (or reuses) trials and prior samples in ``work``; one prior for all of them."""

    prior_name: str
    prior: Any
    work: Path
    design: Design
    trials_only: bool = False
    """Run the SDS trials only (no prior samples, no analysis): possible before the evaluator exists."""
    log: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    evaluator: str = field(default_factory=lambda: evaluator_id())
    """The v2 evaluator scoring this run (:func:`evaluator_id`): a trial or sample scored by another is re-scored."""

    def _say(self, text: str) -> None:
        print(text, flush=True)

    def _spec(self, prompt: str, seed: int, rep: str, cfg_scale: float, view_dependent: bool, metrics: tuple[str, ...]):
        from sdbench import trial
        from sdbench.budget import Budget

        cfg = trial.TrialConfig(
            prompt=prompt,
            loss="sds",
            representation=rep,
            prior=self.prior_name,
            seed=seed,
            budget=Budget("steps", self.design.steps),
            view_dependent=view_dependent,
            metrics=metrics,
            threads=self.design.threads,
        )
        return trial.resolve(cfg, [f"loss.cfg_scale={cfg_scale}"])

    def sds(
        self, arm: str, prompt: str, seed: int, rep: str, cfg_scale: float, view_dependent: bool, metrics: tuple[str, ...]
    ) -> tuple[Path, dict[str, float]]:
        """An SDS trial; a finished trial of the same config in its folder is reused."""
        from sdbench.io import slug
        from sdbench.results import RESULT_FILE, load_result
        from sdbench.trial import run_trial
        from sdbench.trial.metrics import reevaluate

        spec = self._spec(prompt, seed, rep, cfg_scale, view_dependent, metrics)
        out = self.work / arm / f"{slug(prompt, 48)}-s{seed}"
        if (out / RESULT_FILE).is_file():
            done = load_result(out)
            if done.completed and done.config == spec.config_dict():
                record = out / EVALUATOR_RECORD
                scored_by = record.read_text().strip() if record.is_file() else None
                if self.trials_only or "toy2" not in metrics:
                    return out, done.metrics
                if not missing_evaluator_keys(done.metrics, metrics) and scored_by == self.evaluator:
                    return out, done.metrics
                # trained before the evaluator's weights existed (--trials-only), scored by another evaluator, or
                # scored before these records were kept (which evaluator is then unknown)
                self._say(f"{arm} {prompt!r} seed {seed}: evaluating")
                done = reevaluate(out, metrics, priors={(spec.prior_cls, repr(spec.prior)): self.prior})
                record.write_text(self.evaluator + "\n")
                return out, done.metrics
        start = time.perf_counter()
        result = run_trial(spec, out, progress=False, prior=self.prior, resume=True, defer_missing_metrics=self.trials_only)
        if not self.trials_only and "toy2" in metrics:
            (out / EVALUATOR_RECORD).write_text(self.evaluator + "\n")
        self.seconds[arm] = self.seconds.get(arm, 0.0) + time.perf_counter() - start
        self._say(f"{arm} {prompt!r} seed {seed}: {result.cost.seconds:.0f} s")
        return out, result.metrics

    def sample(self, arm: str, prompt: str, seed: int, metrics: tuple[str, ...]) -> tuple[Path, dict[str, float]]:
        """A prior sample of ``prompt`` (DPM-Solver++, CFG 7.5, generator seeded with ``seed``), scored as a 2D trial."""
        from sdbench.io import slug
        from sdbench.trial import evaluate

        out = self.work / arm / f"{slug(prompt, 48)}-s{seed}"
        record = out / "sample.json"
        key = {
            "prompt": prompt,
            "seed": seed,
            "steps": self.design.sample_steps,
            "cfg": self.design.sample_cfg,
            "metrics": list(metrics),
            **({"evaluator": self.evaluator} if "toy2" in metrics else {}),
        }
        if record.is_file():
            data = json.loads(record.read_text())
            if data["key"] == key:
                return out, data["metrics"]
        start = time.perf_counter()
        g = torch.Generator().manual_seed(seed)
        image = (
            self.prior.sample(
                [prompt],
                num_steps=self.design.sample_steps,
                guidance_scale=self.design.sample_cfg,
                scheduler="dpmsolver++",
                generator=g,
                batch_size=1,
            )[0]
            .float()
            .cpu()
        )
        spec = self._spec(prompt, seed, "image", self.design.sample_cfg, False, metrics)
        rep = spec.representation_cls(spec.representation, resolution=self.prior.resolution, prompt=prompt)
        with torch.no_grad():
            rep.logits.copy_(torch.logit(image.clamp(1e-6, 1 - 1e-6))[None])
        values, _ = evaluate(spec, self.prior, rep.to(self.prior.device), out, metrics)
        seconds = time.perf_counter() - start
        record.write_text(json.dumps({"key": key, "metrics": values, "seconds": round(seconds, 2)}, indent=2) + "\n")
        self.seconds[arm] = self.seconds.get(arm, 0.0) + seconds
        self._say(f"{arm} {prompt!r} seed {seed}: sampled")
        return out, values


EVALUATOR_RECORD = "evaluator.txt"
"""In a control's trial folder: the id of the v2 evaluator its toy2 metrics were scored with."""


def evaluator_id() -> str:
    """The v2 evaluator's identity: the first 16 hex digits of its weights file's SHA-256 (``""`` if absent)."""
    from sdbench.evaluation import toy as toy_eval

    return toy_eval.evaluator_weights_id(toy_eval.EVALUATOR_V2_DIR)


def missing_evaluator_keys(values: dict[str, float], metrics: tuple[str, ...]) -> bool:
    """Whether a trial's metrics lack what the v2 evaluator adds (it was scored before the weights existed)."""
    return "toy2" in metrics and "toy2_acc" not in values


def sds_arms(design: Design) -> dict[str, list[tuple[str, str, int, str, float, bool, tuple[str, ...]]]]:
    """Per control, its SDS trials as (arm, prompt, seed, representation, CFG, view words, metrics)."""
    d, both = design, ("toy", "toy2")
    out: dict[str, list] = {c: [] for c in CONTROLS}
    for p, s in product(d.prompts["a"], d.seeds["a"]):
        out["a"] += [("a-S7.5", p, s, "image", d.cfg_low, False, both), ("a-S100", p, s, "image", d.cfg_high, False, both)]
    for p, s in product(d.prompts["b"], d.seeds["b"]):
        out["b"].append((f"b-{b_arm(d)}", p, s, "image", d.b_cfg, False, both))
    for p, s in product(d.prompts["c"], d.seeds["c"]):
        out["c"] += [("c-G", p, s, "gaussians", d.cfg_high, False, both), ("c-Gv", p, s, "gaussians", d.cfg_high, True, both)]
    for p, s in product(d.prompts["d"], d.seeds["d"]):
        out["d"].append(("d-S100", p, s, "image", d.cfg_high, False, ("toy2",)))
        if d.d_secondary:
            out["d"].append(("d-S7.5", p, s, "image", d.cfg_low, False, ("toy2",)))
    return out


def b_arm(d: Design) -> str:
    """The label of (b)'s SDS arm: ``S7.5``, or ``S100`` in amendment 4's CFG attempt."""
    return f"S{d.b_cfg:g}"


def run_arms(run: Runner, control: str, sample: bool) -> dict[str, dict[tuple[str, int], tuple[Path, dict]]]:
    """A control's arms by label ("P" first when ``sample``), each {(prompt, seed): (folder, metrics)}."""
    trials = sds_arms(run.design)[control]
    arms: dict[str, dict] = {"P": {}} if sample else {}
    for arm, p, s, *rest in trials:
        if sample and (p, s) not in arms["P"]:
            arms["P"][(p, s)] = run.sample(f"{control}-P", p, s, rest[-1])
        arms.setdefault(arm.split("-", 1)[1], {})[(p, s)] = run.sds(arm, p, s, *rest)
    return arms


# ------------------------------------------------------------------------------------ statistics
def comparison(
    name: str,
    metric: str,
    arms: str,
    expected: int,
    clusters: dict[str, list[float]],
    resamples: int,
    null: float = 0.0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """One pre-registered comparison: cluster bootstrap of ``clusters`` ({prompt: [values over seeds]}); the verdict
    reads the ``confidence`` interval (``low``/``high``); another than 95 % also reports the 95 % one
    (``low95``/``high95``, the same resamples)."""
    from sdbench.stats import cluster_bootstrap, detectable_effect

    clusters = {p: [v for v in vs if math.isfinite(v)] for p, vs in clusters.items()}
    clusters = {p: vs for p, vs in clusters.items() if vs}
    row: dict[str, Any] = {"name": name, "metric": metric, "arms": arms, "expected": "> 0" if expected > 0 else "< 0"}
    row["per_prompt"] = {p: sum(vs) / len(vs) for p, vs in clusters.items()}
    if len(clusters) < 2:
        return {**row, "verdict": "not computed", "reason": f"{len(clusters)} prompt(s) with finite values", "p_value": math.nan}
    r = cluster_bootstrap(clusters, resamples=resamples, null=null, confidence=confidence)
    keys = ("estimate", "low", "high", "confidence", "p_value", "se", "clusters", "observations", "resamples")
    out = {**row, **{k: r.to_dict()[k] for k in keys}, "verdict": r.direction(expected)}
    if confidence != 0.95:
        r95 = cluster_bootstrap(clusters, resamples=resamples, null=null)
        out |= {"low95": r95.low, "high95": r95.high, "verdict95": r95.direction(expected)}
    return {**out, "detectable_effect": detectable_effect(clusters, alpha=1 - confidence)}


def comparing(d: Design):
    """:func:`comparison` with the design's resamples and verdict confidence."""
    from functools import partial

    return partial(comparison, resamples=d.resamples, confidence=d.confidence)


def paired(a: dict, b: dict, transform=lambda x: x) -> dict[str, list[float]]:
    from sdbench.stats import paired_differences

    return paired_differences({k: transform(v) for k, v in a.items()}, {k: transform(v) for k, v in b.items()})


def log_or_nan(x: float) -> float:
    return math.log(x) if isinstance(x, (int, float)) and x > 0 else math.nan


def by_prompt(values: dict[tuple[str, int], float]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for (p, _), v in sorted(values.items()):
        out.setdefault(p, []).append(v)
    return out


def metric_of(runs: dict[tuple[str, int], tuple[Path, dict]], key: str) -> dict[tuple[str, int], float]:
    return {k: m.get(key, math.nan) for k, (_, m) in runs.items()}


def arm_means(arms: dict[str, dict], keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    from sdbench.stats import mean_ci

    return {arm: {k: mean_ci(list(metric_of(runs, k).values()))[0] for k in keys} for arm, runs in arms.items()}


# -------------------------------------------------------------------------------------- controls
def control_a(run: Runner) -> dict[str, Any]:
    d = run.design
    cmp = comparing(d)
    arms = run_arms(run, "a", sample=True)
    chroma = {a: metric_of(r, "toy_chroma_error") for a, r in arms.items()}
    comparisons = [
        cmp("a1", "toy_chroma_error", "S100 − S7.5", +1, paired(chroma["S100"], chroma["S7.5"])),
        cmp("a2", "toy_chroma_error", "S100 − P", +1, paired(chroma["S100"], chroma["P"])),
    ]
    also = [cmp("a.S7.5-P", "toy_chroma_error", "S7.5 − P", +1, paired(chroma["S7.5"], chroma["P"]))]
    for key in ("toy_lightness_error", "toy_contrast_error", "toy_delta_e"):
        x = {a: metric_of(r, key) for a, r in arms.items()}
        also.append(cmp(f"a.{key}", key, "S100 − S7.5", +1, paired(x["S100"], x["S7.5"])))
    keys = ("toy_chroma_error", "toy_lightness_error", "toy_contrast_error", "toy_delta_e", "toy_iou")
    rows = ("P", "S7.5", "S100")
    cells = [[arms[a][(p, d.seeds["a"][0])][0] for p in d.prompts["a"]] for a in rows]
    picture = Picture(cells, [ARM_LABEL[a] for a in rows], list(d.prompts["a"]))
    return {"comparisons": comparisons, "also": also, "arm_means": arm_means(arms, keys), "picture": picture}


def control_b(run: Runner) -> dict[str, Any]:
    d = run.design
    cmp = comparing(d)
    arms = run_arms(run, "b", sample=True)
    prob = {a: metric_of(r, "toy2_pattern_prob") for a, r in arms.items()}
    detail = {a: metric_of(r, "toy_detail") for a, r in arms.items()}
    S = b_arm(d)
    mark = "" if d.b_cfg == d.cfg_low else "′"  # amendment 4's attempt at CFG 100: b1′, b2′
    comparisons = [
        cmp(f"b1{mark}", "toy2_pattern_prob", f"{S} − P", -1, paired(prob[S], prob["P"])),
        cmp(f"b2{mark}", "log toy_detail", f"{S} − P", -1, paired(detail[S], detail["P"], log_or_nan)),
    ]
    also = []
    for key in ("toy2_pattern_acc", "toy_noise"):
        x = {a: metric_of(r, key) for a, r in arms.items()}
        also.append(cmp(f"b.{key}", key, f"{S} − P", -1, paired(x[S], x["P"])))
    keys = ("toy2_pattern_prob", "toy2_pattern_acc", "toy_detail", "toy_noise")
    rows = ("P", S)
    cells = [[arms[a][(p, d.seeds["b"][0])][0] for p in d.prompts["b"]] for a in rows]
    picture = Picture(cells, [ARM_LABEL[a] for a in rows], list(d.prompts["b"]))
    return {"comparisons": comparisons, "also": also, "arm_means": arm_means(arms, keys), "picture": picture}


def control_c(run: Runner) -> dict[str, Any]:
    from sdbench.stats import wilson

    d = run.design
    cmp = comparing(d)
    arms = run_arms(run, "c", sample=False)
    two = {a: metric_of(r, "toy2_janus_two_faced") for a, r in arms.items()}
    false = {a: metric_of(r, "toy2_janus_false_front") for a, r in arms.items()}
    comparisons = [
        cmp("c1", "toy2_janus_two_faced", "share in G", +1, by_prompt(two["G"])),
        cmp("c2", "toy2_janus_two_faced", "Gv − G", -1, paired(two["Gv"], two["G"])),
    ]
    also = [cmp("c.false_front", "toy2_janus_false_front", "Gv − G", -1, paired(false["Gv"], false["G"]))]
    shares = {}
    for a, values in two.items():
        xs = [v for v in values.values() if math.isfinite(v)]
        if xs:
            lo, hi = wilson(int(sum(xs)), len(xs))
            shares[a] = {
                "two_faced": int(sum(xs)),
                "trials": len(xs),
                "share": sum(xs) / len(xs),
                "wilson_low": lo,
                "wilson_high": hi,
            }
    finite = {k: v for k, v in false["G"].items() if math.isfinite(v)}
    worst = max(finite, key=finite.get) if finite else next(iter(arms["G"]))
    cells = [sorted((arms[a][worst][0] / "views").glob("*.png")) for a in ("G", "Gv")]
    n = len(cells[0])
    azimuths = [f"{(360.0 * i / n + 180) % 360 - 180:+.0f}°" for i in range(n)]  # the evaluation orbit's
    picture = Picture(cells, [f"{ARM_LABEL[a]}\n{worst[0]}, seed {worst[1]}" for a in ("G", "Gv")], azimuths)
    keys = ("toy2_janus_two_faced", "toy2_janus_false_front", "toy2_janus_missed_front", "toy2_janus_agreement", "toy_iou")
    return {
        "comparisons": comparisons,
        "also": also,
        "arm_means": arm_means(arms, keys),
        "trial_level_share_wilson_ignores_clustering": shares,
        "picture_trial": {"prompt": worst[0], "seed": worst[1]},
        "picture": picture,
    }


def omitted_attribute(prompt: str) -> str:
    from sdbench.world.grammar import parse

    return "colour" if parse(prompt, "v2").colour is None else "shape"


def split_by_readout(prompt_trials: dict[str, list[Path]]) -> dict[str, Any]:
    """Exploratory (``docs/controls.md``, results of amendment 3): per prompt ({prompt: its seeds' folders}),
    :func:`sdbench.evaluation.diversity.distance_by_agreement` with each seed labelled by its omitted attribute's
    read-out (views averaged, then argmax), and the means over prompts (NaN-skipping)."""
    from sdbench.evaluation.diversity import distance_by_agreement, load_readouts, seed_classes

    per_prompt = {}
    for prompt, folders in prompt_trials.items():
        embeddings, probs = load_readouts(folders)
        per_prompt[prompt] = distance_by_agreement(embeddings, seed_classes(probs[omitted_attribute(prompt)]))
    means = {}
    for k in ("share_same", "distance_same", "distance_different"):
        xs = [v[k] for v in per_prompt.values() if math.isfinite(v[k])]
        means[k] = sum(xs) / len(xs) if xs else math.nan
    return {"mean_over_prompts": means, "per_prompt": per_prompt}


def control_d(run: Runner) -> dict[str, Any]:
    from sdbench.evaluation.diversity import diversity_of

    d = run.design
    cmp = comparing(d)
    arms = run_arms(run, "d", sample=True)
    div: dict[str, dict[str, dict[str, float]]] = {a: {} for a in arms}
    for a, runs in arms.items():
        for p in d.prompts["d"]:
            div[a][p] = diversity_of([runs[(p, s)][0] for s in d.seeds["d"]])
    dist = {a: {p: v["diversity_distance"] for p, v in div[a].items()} for a in arms}
    entropy = {a: {p: v[f"diversity_entropy_{omitted_attribute(p)}"] for p, v in div[a].items()} for a in arms}

    def per_prompt(x: dict[str, float], y: dict[str, float]) -> dict[str, list[float]]:
        return {p: [x[p] - y[p]] for p in x if math.isfinite(x[p]) and math.isfinite(y[p])}

    comparisons = [cmp("d1", "diversity_distance", "S100 − P", -1, per_prompt(dist["S100"], dist["P"]))]
    also = [
        *([cmp("d.S7.5-P", "diversity_distance", "S7.5 − P", -1, per_prompt(dist["S7.5"], dist["P"]))] if d.d_secondary else []),
        cmp(
            "d.entropy",
            "diversity_entropy (omitted attribute)",
            "S100 − P",
            -1,
            per_prompt(entropy["S100"], entropy["P"]),
        ),
    ]
    explore = {
        a: split_by_readout({p: [runs[(p, s)][0] for s in d.seeds["d"]] for p in d.prompts["d"]}) for a, runs in arms.items()
    }
    shown = [p for p in (d.prompts["d"][0], next((q for q in d.prompts["d"] if "object" in q), None)) if p]
    order = [(p, a) for p in dict.fromkeys(shown) for a in arms]
    cells = [[arms[a][(p, s)][0] for s in d.seeds["d"]] for p, a in order]
    picture = Picture(cells, [f"{p}\n{ARM_LABEL[a]}" for p, a in order], [f"seed {s}" for s in d.seeds["d"]])
    return {
        "comparisons": comparisons,
        "also": also,
        "diversity": {a: {p: dict(v) for p, v in div[a].items()} for a in arms},
        "exploratory_distance_by_readout": {
            "note": "added after amendment 2's results, no role in any verdict: diversity_distance split into seed "
            "pairs whose omitted-attribute read-out agrees (same mode) and pairs where it differs",
            **explore,
        },
        "picture_prompts": list(dict.fromkeys(shown)),
        "picture": picture,
    }


RUN = {"a": control_a, "b": control_b, "c": control_c, "d": control_d}


# ------------------------------------------------------------------------------------------ main
@dataclass
class Picture:
    """Rows of views: each cell a trial folder (its first view, ``views/000.png``) or a view file."""

    cells: list[list[Path]]
    rows: list[str]
    columns: list[str]

    def save(self, path: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
        from PIL import Image

        R, C = len(self.cells), max(len(r) for r in self.cells)
        fig, axes = plt.subplots(R, C, figsize=(0.95 * C + 1.4, 0.95 * R + 0.5), squeeze=False)
        for i, row in enumerate(self.cells):
            for j in range(C):
                ax = axes[i][j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j < len(row):
                    f = row[j] if row[j].suffix == ".png" else row[j] / "views" / "000.png"
                    ax.imshow(np.asarray(Image.open(f).convert("RGB")), interpolation="nearest")
                else:
                    ax.axis("off")
                if j == 0:
                    ax.set_ylabel(self.rows[i], fontsize=6, rotation=0, ha="right", va="center")
                if i == 0:
                    ax.set_title(self.columns[j].removeprefix("a ").removeprefix("an ").replace(" with a ", "\n+ "), fontsize=5)
        fig.subplots_adjust(wspace=0.05, hspace=0.08)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return path


def check_ready(prior_name: str, evaluator: bool = True) -> tuple[type, Any]:
    """The prior's class and config, or a :class:`UserError` (one line) when the prior or (``evaluator``) the v2
    evaluator is missing."""
    from sdbench.errors import UserError
    from sdbench.evaluation import toy
    from sdbench.trial import resolve_prior

    cls, cfg = resolve_prior(prior_name)
    cls.check_available(cfg)
    folder = Path(toy.EVALUATOR_V2_DIR)
    if evaluator and not (folder / "open_clip_model.safetensors").is_file():
        raise UserError(
            f"the toy v2 evaluator's weights are missing from {folder}; train them with "
            f"'python -m sdbench.world.train_evaluator --world v2 --out {folder}' (see docs/toy-world-v2.md)"
        )
    return cls, cfg


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="a,b,c,d", help="comma list of controls to run (a, b, c, d)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 3 prompts per control, 100 steps (not a control run)")
    ap.add_argument("--prior", default="toy2", help="prior name or local diffusers folder (default: the v2 toy prior)")
    ap.add_argument("--work", type=Path, default=None, help="trial folders (default runs/controls, --quick runs/controls-quick)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per trial (0: torch's default)")
    ap.add_argument(
        "--trials-only",
        action="store_true",
        help="run the SDS trials only (works before the v2 evaluator exists); the plain command then scores them",
    )
    ap.add_argument(
        "--label",
        default="",
        type=label_arg,
        help="a world version's run beside the first (docs/controls.md, amendment 2): writes controls_LABEL.json "
        "and control_*_LABEL.png; use its own --work folder",
    )
    ap.add_argument(
        "--design",
        type=int,
        default=1,
        choices=DESIGNS,
        help="the docs/controls.md amendment whose design to run: 1 (default; one seed in (a)-(c), six in (d)), 3 "
        "(the seeds first written, two and eight, a second look whose verdicts read 97.5 %% intervals) or 4 (with 3's "
        "seeds and rule, control (b) with SDS at CFG 100: --only b)",
    )
    ap.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)  # tests only: not the pre-registered design
    ap.add_argument("--sample-steps", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--resamples", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--prompts", type=int, default=None, help=argparse.SUPPRESS)  # the first N prompts per control
    ap.add_argument("--seeds", type=int, default=None, help=argparse.SUPPRESS)  # the first N seeds per control
    args = ap.parse_args(argv)
    args.only = tuple(dict.fromkeys(c.strip() for c in args.only.split(",") if c.strip()))
    if not args.only or set(args.only) - set(CONTROLS):
        ap.error(f"--only takes a comma list of {', '.join(CONTROLS)}, got {','.join(args.only)}")
    if args.design == 4 and args.only != ("b",):
        ap.error("--design 4 is amendment 4's CFG attempt at control (b) only: add --only b")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from sdbench.stats import holm

    args = parse_args(argv)
    plan = design(args.quick, args.design)
    overrides = {"steps": args.steps, "sample_steps": args.sample_steps, "resamples": args.resamples}
    changed = {k: v for k, v in overrides.items() if v is not None}
    plan = replace(plan, threads=args.threads, **changed)
    if args.prompts is not None:
        plan = replace(plan, prompts={c: v[: args.prompts] for c, v in plan.prompts.items()})
        changed["prompts"] = args.prompts
    if args.seeds is not None:
        plan = replace(plan, seeds={c: v[: args.seeds] for c, v in plan.seeds.items()})
        changed["seeds"] = args.seeds
    cls, cfg = check_ready(args.prior, evaluator=not args.trials_only)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.work or REPO / "runs" / ("controls-quick" if plan.quick else "controls")
    run = Runner(args.prior, cls(cfg), Path(work), plan, trials_only=args.trials_only)
    if args.trials_only:
        todo = [t for c in args.only for t in sds_arms(plan)[c]]
        for i, t in enumerate(todo):
            run.sds(*t)
            print(f"[{i + 1}/{len(todo)}] done", flush=True)
        return {"trials": len(todo), "seconds": round(sum(run.seconds.values()), 1)}
    start = time.perf_counter()
    results: dict[str, Any] = {
        "quick": plan.quick,
        "not_a_control_run": plan.quick or bool(changed),
        "design": {
            "label": args.label or None,
            "amendment": plan.amendment,
            "confidence": plan.confidence,
            "prior": args.prior,
            "evaluator": run.evaluator,
            "steps": plan.steps,
            "sample": {"scheduler": "dpmsolver++", "steps": plan.sample_steps, "cfg": plan.sample_cfg},
            "cfg": {"low": plan.cfg_low, "high": plan.cfg_high},
            "prompts": {c: list(plan.prompts[c]) for c in args.only},
            "seeds": {c: list(plan.seeds[c]) for c in args.only},
            "resamples": plan.resamples,
            "threads": plan.threads,
            "changed_from_preregistration": changed,
        },
        "controls": {},
    }
    images = Path(work) if plan.quick or changed else DOCS
    for c in args.only:
        out = RUN[c](run)
        pic = out.pop("picture")
        file = labelled(PICTURES[c].removesuffix(".png"), args.label) + ".png"
        out["picture"] = {"file": str(pic.save(images / file).resolve()), "rows": pic.rows, "columns": pic.columns}
        results["controls"][c] = out
    family = [row for c in args.only for row in results["controls"][c]["comparisons"]]
    for row, p in zip(family, holm([row["p_value"] for row in family])):
        row["p_holm"] = p
    for c in args.only:
        verdicts = [row["verdict"] for row in results["controls"][c]["comparisons"]]
        results["controls"][c]["passed"] = all(v == "reproduced" for v in verdicts)
    results["seconds"] = {"total": round(time.perf_counter() - start, 1), **{k: round(v, 1) for k, v in run.seconds.items()}}
    name = "controls" if set(args.only) == set(CONTROLS) else "controls_" + "".join(sorted(args.only))
    name = labelled(name, args.label)
    name += "_quick" if plan.quick or changed else ""
    if plan.quick or changed:
        from sdbench.io import write_json

        write_json(Path(work) / f"{name}.json", results)
    else:
        save(name, results)
    for c in args.only:
        r = results["controls"][c]
        line = "; ".join(
            f"{row['name']} {row['arms']} {row.get('estimate', math.nan):+.3g} [{row.get('low', math.nan):+.3g}, "
            f"{row.get('high', math.nan):+.3g}] {row['verdict']}"
            for row in r["comparisons"]
        )
        level = "" if plan.confidence == 0.95 else f" ({100 * plan.confidence:g} % intervals)"
        print(f"control ({c}) {'PASSED' if r['passed'] else 'not passed'}{level}: {line}", flush=True)
    return results


def cli(argv: list[str] | None = None) -> int:
    from sdbench.errors import UserError

    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
