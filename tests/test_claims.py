"""The claims study's machinery (sdbench.claims, sweeps/claims.toml) on synthetic sweeps with constructed effects.

The pre-registration (docs/claims.md) is read, never written, except into a copy: its rows must parse, agree with
the sweep definition and the gates, and the report may change only its results block.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import tomllib
from scipy.stats import norm

from sdbench import claims as C
from sdbench.budget import Budget
from sdbench.errors import UserError
from sdbench.results import Cost, Hardware, TrialResult, group_key, load_result, write_result
from sdbench.stats import cluster_bootstrap, holm

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "claims.md"
TOML = ROOT / "sweeps" / "claims.toml"


@pytest.fixture(scope="module")
def registration() -> C.Registration:
    return C.read_registration(DOC)


# ------------------------------------------------------------------ the document, read
def test_every_row_of_the_pre_registration_is_read_and_agrees_with_its_line(registration):
    assert [c.id for c in registration.claims] == [f"C{i}" for i in range(1, 31)]
    rows = {
        c.id: next(line for line in DOC.read_text().splitlines() if line.startswith(f"| {c.id} |")) for c in registration.claims
    }
    arrows = {"up": "↑", "down": "↓", "equivalent": "≈", "noninferior": "≥ −δ"}
    for c in registration.claims:
        cells = [x.strip() for x in rows[c.id].strip("|").split("|")]
        if c.ratio:  # C22: the GPU cost ratio
            assert (c.a, c.b, c.test, c.ratio) == ("vdm", "sds", "equivalent", (0.8, 1.25)) and "s/step" in cells[3]
            continue
        # rebuilt from the parsed claim, each cell equals the document's: they cannot drift apart
        share = C.METRICS[c.metric].share
        assert (
            cells[3] == f"{'log₂ ' if c.log2 else ''}`{c.metric}`{' share' if c.metric == 'janus_two_faced' else ''} · {c.subset}"
        )
        assert cells[4] == f"`{c.a}` − `{c.b}`"
        assert cells[5] == arrows[c.test]
        assert _number(cells[6]) == pytest.approx(c.delta * (100 if share else 1))
        assert cells[7] == ("—" if c.gate is None else f"{c.gate[0]}(`{c.gate[1]}`)")
        assert c.metric in C.METRICS and c.subset in registration.subsets and {c.a, c.b} <= set(registration.arms)
    by_id = {c.id: c for c in registration.claims}
    assert (by_id["C2"].log2, by_id["C2"].gate, by_id["C2"].delta) == (True, ("G2", "sds@7.5"), 0.5)
    assert (by_id["C8"].test, by_id["C8"].delta) == ("noninferior", pytest.approx(0.10))
    assert {c.id for c in registration.claims if c.test == "equivalent"} == {"C17", "C19", "C22"}
    # the document's names mapped to the keys trials record
    assert C.METRICS["toy_acc"].key == "toy2_acc" and C.METRICS["janus_two_faced"].key == "toy2_janus_two_faced"
    sizes = {k: len(v) for k, v in registration.subsets.items()}
    assert sizes == {"P": 4, "T": 5, "F": 5, "A": 8, "S": 9, "X": 14}  # as cut by amendment 1
    assert registration.subsets["S"] == registration.subsets["P"] + registration.subsets["F"]
    assert registration.arms["sds@7.5"] == C.Arm("sds@7.5", "sds", ("loss.cfg_scale=7.5",))
    assert registration.arms["sds+perpneg"].overrides == ("loss.perp_neg=true",)
    assert registration.arms["vdm_cut500"].loss == "vdm_cut500" and registration.arms["sds"].overrides == ()


def _number(text: str) -> float:
    return float(text.split()[0].replace("−", "-"))


def test_the_gates_table_names_the_metric_subset_and_threshold_of_each_gate():
    lines = {m.group(1): line for line in DOC.read_text().splitlines() if (m := re.match(r"\| (G[0-9])\(B\) \|", line))}
    assert set(lines) == set(C.GATES)
    for gid, g in C.GATES.items():
        assert f"`{g.metric}`" in lines[gid] and f" on {g.subset}" in lines[gid] and g.phenomenon in lines[gid]
        threshold = g.threshold * (100 if C.METRICS[g.metric].share else 1)
        assert re.search(rf"(?<![0-9.]){threshold:g}(?![0-9])", lines[gid].replace("0.10", "0.1")), (gid, threshold)
    assert C.GATES["G2"].log2 and "log₂" in lines["G2"] and C.GATES["G4"].inclusive and "≥" in lines["G4"]


def test_a_row_that_cannot_be_read_is_an_error_naming_it(tmp_path):
    bad = tmp_path / "claims.md"
    bad.write_text(
        DOC.read_text().replace("| `toy_acc` · X | `sds` − `sds@7.5` | ↑ |", "| `toy_acc` · X | `sds` − `sds@7.5` | ↗ |")
    )
    with pytest.raises(UserError, match="row C1: unknown expected direction"):
        C.read_registration(bad)


# ------------------------------------------------------------------ the sweep definition
def test_the_sweep_has_one_group_per_arm_with_the_documents_overrides_and_prompts(registration):
    from sdbench.sweep import load_definition, plan

    data = tomllib.loads(TOML.read_text())
    groups = load_definition(TOML)
    names = [g["name"] for g in data["group"]]
    assert names[:-2] == list(registration.arms)  # every arm, in the table's order; then sds and vsd on A
    X, A = set(registration.subsets["X"]), set(registration.subsets["A"])
    for name, g in zip(names[:-2], groups):
        arm = registration.arms[name]
        assert g.losses == (arm.loss,)
        assert f"trial.arm={name}" in g.overrides
        assert [o for o in g.overrides if o.startswith("loss.")] == list(arm.overrides)
        assert (g.priors, g.representations, g.seeds, g.budget) == (("toy2",), ("gaussians",), (0,), Budget("steps", 1000))
        assert set(g.prompts) == X and len(g.prompts) == 14
    for arm, g in zip(("sds", "vsd"), groups[-2:]):  # amendment 1: diversity needs two seeds of each ambiguous prompt
        assert (g.losses, g.seeds, set(g.prompts), g.budget) == ((arm,), (0, 1), A, Budget("steps", 1000))
        assert f"trial.arm={arm}" in g.overrides and not [o for o in g.overrides if o.startswith("loss.")]
    assert sum(len(g.prompts) * len(g.seeds) * len(g.losses) * len(g.representations) for g in groups) == 298
    assert len(plan(groups)) == 298  # no two groups plan the same trial
    # every group resolves; the three SDS arms are three configs, and the arm names the trial
    planned = plan([dataclasses.replace(g, prompts=g.prompts[:1], seeds=(0,)) for g in groups[:-2]])
    assert len(planned) == 19
    sds = {spec.trial.arm: (tid, spec.loss) for tid, spec in planned if spec.trial.loss == "sds"}
    assert (sds["sds"][1].cfg_scale, sds["sds@7.5"][1].cfg_scale, sds["sds+perpneg"][1].perp_neg) == (100.0, 7.5, True)
    assert "-sds-7-5-gaussians-s0-" in sds["sds@7.5"][0] and "-sds-perpneg-gaussians-s0-" in sds["sds+perpneg"][0]
    bridge = next(spec for _, spec in planned if spec.trial.arm == "sds_bridge")
    assert bridge.loss.stage_two_start == 800  # 20k of 25k scaled to the 1000-step budget: the table's 80 %


def test_the_exploratory_sweeps_repeat_the_confirmatory_arms_on_image_and_at_equal_nfe():
    """claims-image.toml: claims.toml's groups on `image` without view words; claims-nfe.toml: the arms whose NFE
    per step is not SDS's 2, each with round(2000 / NFE per step) steps and otherwise its confirmatory group."""
    from sdbench.sweep import load_definition

    confirmatory = load_definition(TOML)
    image = load_definition(TOML.parent / "claims-image.toml")
    names = [g["name"] for g in tomllib.loads(TOML.read_text())["group"]]
    skipped = {"esd", "sds+perpneg", "ism", "sdi"}  # no image row: Janus-only (no faces in 2D) or untestable on 3DGS
    kept = [g for n, g in zip(names, confirmatory) if n not in skipped]
    assert len(image) == len(kept) == len(confirmatory) - 4
    for c, i in zip(kept, image):
        assert dataclasses.replace(i, representations=c.representations, overrides=c.overrides) == c
        assert i.representations == ("image",) and "trial.view_dependent=false" in i.overrides
        assert [o for o in i.overrides if o != "trial.view_dependent=false"] == list(c.overrides)
    reg = C.read_registration(DOC)
    for claim in reg.claims:  # a skipped arm appears only in claims with no image read-out
        if {claim.a, claim.b} & skipped:
            assert claim.metric == "janus_two_faced" or claim.gate == ("G2", "sds"), claim.id
    per_step = {"sds+perpneg": 4, "vsd": 5, "esd": 6, "ism": 4.752, "csd": 2.999, "nfsd": 2.838, "sdi": 17.252}
    per_step |= {"cds": 4, "lods": 4, "asd": 3}  # measured in the confirmatory trials (the file's header)
    by_arm = {next(o for o in g.overrides if o.startswith("trial.arm=")).split("=")[1]: g for g in confirmatory[:-2]}
    nfe = load_definition(TOML.parent / "claims-nfe.toml")
    assert [next(o for o in g.overrides if o.startswith("trial.arm=")).split("=")[1] for g in nfe] == [*per_step, "vsd"]
    for g in nfe[:-1]:
        arm = next(o for o in g.overrides if o.startswith("trial.arm=")).split("=")[1]
        assert g.budget == Budget("steps", round(2000 / per_step[arm]))
        assert dataclasses.replace(g, budget=by_arm[arm].budget) == by_arm[arm]
    assert dataclasses.replace(nfe[-1], budget=confirmatory[-1].budget) == confirmatory[-1]  # vsd on A


def test_a_trial_without_an_arm_keeps_its_id_and_groups_by_its_loss():
    import hashlib

    from sdbench.sweep import plan
    from sdbench.sweep.definition import SweepConfig

    ((tid, spec),) = plan(SweepConfig(prompts=("a red cube",), losses=("sds",), budget=Budget("steps", 10)))
    old = spec.config_dict()
    del old["trial"]["arm"]  # the config as it was before trial.arm existed
    assert tid.endswith(hashlib.sha1(json.dumps(old, sort_keys=True).encode()).hexdigest()[:8])
    result = TrialResult("a red cube", "sds", "gaussians", "toy", 0, Budget("steps", 10), "completed", config=spec.config_dict())
    assert result.arm == "sds" and group_key(result).loss == "sds"
    labelled = dataclasses.replace(result, config={"trial": {"arm": "sds@7.5"}})
    assert labelled.arm == "sds@7.5" and group_key(labelled).loss == "sds@7.5"


# ------------------------------------------------------------------ synthetic sweeps
def _write(
    out: Path,
    arm: str,
    prompt: str,
    seed: int,
    metrics: dict,
    *,
    loss: str = "sds",
    rep: str = "gaussians",
    config=None,
    steps: int = 500,
    nfe: int = 1000,
    nfe_with_grad: int = 0,
):
    d = out / "trials" / f"{len(list((out / 'trials').glob('*'))) if (out / 'trials').is_dir() else 0:05d}"
    cfg = json.loads(json.dumps(config)) if config else {"trial": {"arm": arm}}
    cfg["trial"].update(prompt=prompt, seed=seed)
    r = TrialResult(
        prompt,
        loss,
        rep,
        "toy2",
        seed,
        Budget("steps", steps),
        "completed",
        metrics=metrics,
        cost=Cost(
            seconds=100.0,
            steps=steps,
            nfe=nfe,
            nfe_with_grad=nfe_with_grad,
            seconds_per_step=0.2,
            started_at=1000.0 + seed,
            finished_at=1100.0 + seed,
        ),
        hardware=Hardware(device="cpu", cpu="test cpu", cpu_count=2),
        config=cfg,
    )
    write_result(d, r)
    return d


def _levels(prompts, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {p: float(v) for p, v in zip(prompts, rng.normal(0.0, 3.0, len(prompts)))}


def _spread(n: int, mean: float, sd: float) -> np.ndarray:
    z = norm.ppf((np.arange(n) + 0.5) / n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, registration):
    """14 prompts × 2 seeds; per (prompt, seed) a baseline chroma error, and arms shifted from it by known amounts."""
    out = tmp_path_factory.mktemp("synthetic")
    X = registration.subsets["X"]
    base = _levels(X)
    rng = np.random.default_rng(1)
    shifts = {
        "good": -3 * 2.3 + rng.normal(0, 1.0, len(X)),  # 3δ in the expected (↓) direction
        "null": rng.normal(0, 1.0, len(X)),
        "bad": 3 * 2.3 + rng.normal(0, 1.0, len(X)),  # 3δ against it
        "weak": _spread(len(X), -2.5, 4.6),  # |Δ̂| ≥ δ, p ≈ 0.04 unadjusted: not significant after Holm
    }
    for k, p in enumerate(X):
        for seed in (0, 1):
            jitter = 0.5 if seed == 0 else -0.5  # seeds differ, their mean is the prompt's value
            _write(out, "base", p, seed, {"toy_chroma_error": base[p] + jitter})
            for arm, s in shifts.items():
                _write(out, arm, p, seed, {"toy_chroma_error": base[p] + s[k] + jitter * 1.5})
    return out


def _registration(registration, *claims) -> C.Registration:
    arms = {a: C.Arm(a, "sds") for a in ("base", "good", "null", "bad", "weak")}
    return C.Registration(tuple(claims), arms, registration.subsets)


def _claim(cid: str, a: str, test="down", metric="toy_chroma_error", delta=2.3, gate=None, subset="X") -> C.Claim:
    return C.Claim(cid, "test", f"{a} vs base", metric, False, subset, a, "base", test, delta, gate)


def _results(out: Path):
    from sdbench.results import load_results

    return load_results(sorted((out / "trials").iterdir()))


def test_constructed_effects_get_their_verdicts_and_holm_runs_over_the_family(synthetic, registration):
    reg = _registration(
        registration,
        _claim("R", "good"),
        _claim("N", "null"),
        _claim("O", "bad"),
        _claim("W", "weak"),
        _claim("M", "good", metric="toy_noise", delta=0.01),  # no trial recorded toy_noise
        _claim("G", "good", gate=("G1", "base"), subset="S"),  # base's chroma is not beyond the truth's by 2.3 ± CI
    )
    j = C.judge(_results(synthetic), reg, reference=None)
    r = {x.claim.id: x for x in j.claims}
    assert r["R"].verdict == "reproduced" and r["R"].estimate.estimate == pytest.approx(-6.9, abs=0.5)
    assert r["O"].verdict == "opposite"
    assert r["N"].verdict == "not reproduced"
    n = r["N"].estimate
    assert r["N"].detail.startswith(f"not reproduced (effect < {C._fmt(-n.low)};")  # the bound in the expected direction
    assert f"SDE {C._fmt(n.sde)}" in r["N"].detail and n.sde == pytest.approx(C.SDE_Z * n.se)
    assert r["M"].verdict == "untestable here" and "too few defined values: 0 prompts" in r["M"].detail
    assert r["G"].verdict == "untestable here" and "phenomenon absent: G1(base)" in r["G"].detail
    assert r["G"].gate.passed is False and r["G"].estimate is None
    # Holm over the four testable claims only; W is significant alone (p < 0.05) but not after Holm
    tested = [r[k] for k in ("R", "N", "O", "W")]
    assert j.family == 4
    assert [x.p_holm for x in tested] == pytest.approx(holm([x.estimate.p for x in tested]))
    w = r["W"]
    assert 0.025 < w.estimate.p < 0.05 and w.p_holm > 0.05 and abs(w.estimate.estimate) >= 2.3
    assert w.verdict == "not reproduced" and "effect <" in w.detail
    assert all(math.isnan(r[k].p_holm) for k in ("M", "G"))
    # the unit is the prompt: 14 prompts, 28 pairs; the interval is that of the per-prompt means
    assert (r["R"].estimate.prompts, r["R"].estimate.pairs, r["R"].estimate.dropped) == (14, 28, 0)
    per_prompt = {row["prompt"]: row["diff"] for row in r["R"].per_prompt}
    order = sorted(per_prompt, key=lambda p: repr((p, 0)))  # the clusters' order in stats.paired_differences
    boot = cluster_bootstrap({p: [per_prompt[p]] for p in order}, resamples=C.RESAMPLES, seed=C.SEED)
    assert (r["R"].estimate.low, r["R"].estimate.high) == pytest.approx((boot.low, boot.high))


def test_seeds_of_one_prompt_are_one_cluster(tmp_path, registration):
    """Two identical seeds per prompt give the interval of one seed per prompt: they are not independent evidence."""
    X = registration.subsets["X"][:8]
    d = _spread(len(X), 1.0, 2.0)
    one, two = tmp_path / "one", tmp_path / "two"
    for k, p in enumerate(X):
        for out, seeds in ((one, (0,)), (two, (0, 1))):
            for s in seeds:
                _write(out, "base", p, s, {"toy_chroma_error": 0.0})
                _write(out, "null", p, s, {"toy_chroma_error": float(d[k])})
    reg = _registration(registration, _claim("N", "null", subset="X"))
    a = C.judge(_results(one), reg, reference=None).claims[0].estimate
    b = C.judge(_results(two), reg, reference=None).claims[0].estimate
    assert (a.prompts, a.pairs, b.prompts, b.pairs) == (8, 8, 8, 16)
    assert (b.estimate, b.low, b.high, b.p) == pytest.approx((a.estimate, a.low, a.high, a.p))
    naive = cluster_bootstrap([[v] for v in np.repeat(d, 2)], resamples=C.RESAMPLES, seed=C.SEED)
    assert naive.high - naive.low < 0.8 * (b.high - b.low)  # pairs as independent units: too narrow


def test_undefined_values_are_dropped_and_counted_and_too_few_prompts_is_untestable(tmp_path, registration):
    P = registration.subsets["X"][:8]
    for k, p in enumerate(P):
        for s in (0, 1):
            _write(tmp_path, "base", p, s, {"toy_chroma_error": 1.0})
            value = float("nan") if k >= 4 else 1.0 + k  # 4 prompts defined
            _write(tmp_path, "null", p, s, {"toy_chroma_error": value})
    j = C.judge(_results(tmp_path), _registration(registration, _claim("N", "null", subset="X")), reference=None)
    assert j.claims[0].verdict == "untestable here" and "4 prompts" in j.claims[0].detail and j.family == 0


def test_equivalence_and_non_inferiority_verdicts():
    def est(e, lo, hi):
        return C.Estimate(e, lo, hi, 0.1, 0.5, 10, 20, 20, 0.28)

    eq = C.Claim("E", "", "", "toy_chroma_error", False, "S", "a", "b", "equivalent", 2.3, None)
    assert C._verdict(eq, est(0.1, -0.5, 0.6), 0.01)[0] == "reproduced"
    assert C._verdict(eq, est(3.5, 2.5, 4.5), 0.9)[0] == "opposite"  # the interval lies outside ±δ
    v, text = C._verdict(eq, est(1.0, -0.5, 3.0), 0.3)
    assert v == "not reproduced" and "as large as 3" in text
    ni = C.Claim("N", "", "", "toy_acc", False, "X", "a", "b", "noninferior", 0.10, None)
    assert C._verdict(ni, est(-0.02, -0.08, 0.04), 0.01)[0] == "reproduced"
    assert C._verdict(ni, est(-0.3, -0.4, -0.2), 0.9)[0] == "opposite"
    v, text = C._verdict(ni, est(-0.05, -0.15, 0.05), 0.2)
    assert v == "not reproduced" and "worse by up to 15.0 pp" in text  # shares in percentage points


def test_the_cost_claim_resamples_timings_and_needs_them(tmp_path, registration):
    c22 = next(c for c in registration.claims if c.ratio)
    rng = np.random.default_rng(0)
    same = rng.normal(0.10, 0.002, 30)
    assert C._judge_cost(c22, None).verdict == "untestable here"
    path = tmp_path / "gpu.json"
    for factor, verdict in ((1.0, "reproduced"), (2.0, "opposite")):
        vdm = (same * factor).tolist()
        path.write_text(
            json.dumps({"results": {"gaussians": {"sds": {"step_seconds": same.tolist()}, "vdm": {"step_seconds": vdm}}}})
        )
        r = C._judge_cost(c22, path)
        r.p_holm = r.estimate.p  # a family of one
        assert C._verdict(c22, r.estimate, r.p_holm)[0] == verdict
        assert math.exp(r.estimate.estimate) == pytest.approx(factor, rel=0.03)
    path.write_text(json.dumps({"results": {"gaussians": {"sds": {"seconds_per_step": 0.1}}}}))
    with pytest.raises(UserError, match="no per-step times"):
        C._judge_cost(c22, path)


def test_a_trial_whose_config_is_not_its_arms_is_refused(tmp_path, registration):
    from sdbench.trial import TrialConfig, resolve

    config = resolve(TrialConfig(prompt="a red cube", prior="toy2"), ["trial.arm=sds@7.5"]).config_dict()  # CFG 100
    _write(tmp_path, "sds@7.5", "a red cube", 0, {}, config=config)
    with pytest.raises(UserError, match=r"arm 'sds@7.5' needs cfg_scale=7.5|needs loss.cfg_scale=7.5"):
        C.check_arms(_results(tmp_path), registration.arms)


def test_g5s_reference_is_the_distance_between_true_renders_over_the_open_attribute(tmp_path):
    from sdbench.trial import TrialConfig, resolve

    config = resolve(TrialConfig(prompt="a cube", prior="toy2"), ["trial.eval_views=4"]).config_dict()
    d = _write(tmp_path, "sds", "a cube", 0, {}, config=config)
    calls = []

    def colour(images):  # a fake evaluator: the mean colour of each view
        calls.append(images.shape)
        return images.mean((2, 3))

    cube = C.diversity_reference("a cube", d, colour)  # six colours of one shape
    red = C.diversity_reference("a red object", d, colour)  # five shapes of one colour
    assert calls[0] == (4, 3, 32, 32) and len(calls) == 6 + 5
    assert cube > 4 * red > 0  # colour differences move the mean colour far more than shape differences
    with pytest.raises(UserError, match="no open attribute"):
        C.diversity_reference("a red cube", d, colour)


def test_the_positive_controls_are_restated_from_their_result_file(tmp_path):
    assert C.controls_section(tmp_path / "none.json").startswith("Not run yet")
    path = tmp_path / "controls.json"
    row = {"name": "a1", "metric": "toy_chroma_error", "arms": "S100 − S7.5", "estimate": 4.0, "low": 3.0, "high": 5.0}
    controls = {"a": {"passed": True, "comparisons": [{**row, "verdict": "reproduced"}]}}
    path.write_text(json.dumps({"measured_at": "then", "results": {"not_a_control_run": False, "controls": controls}}))
    text = C.controls_section(path)
    assert (
        "| (a) | passed | a1 | `toy_chroma_error` | S100 − S7.5 | 4 [3, 5] | reproduced |" in text and "not a control" not in text
    )


def test_the_results_block_is_the_only_part_of_the_document_written(tmp_path):
    doc = tmp_path / "claims.md"
    doc.write_text("head\n<!-- sdbench:claims -->\nold\n<!-- /sdbench:claims -->\ntail\n")
    C.write_block(doc, "new table")
    assert doc.read_text() == "head\n<!-- sdbench:claims -->\nnew table\n<!-- /sdbench:claims -->\ntail\n"
    doc.write_text("no markers here\n")
    with pytest.raises(UserError, match="markers"):
        C.write_block(doc, "x")


# ------------------------------------------------------------------ end to end, the real registration
def _readout(d: Path, embedding) -> None:
    import torch

    from sdbench.evaluation.diversity import READOUT_FILE
    from sdbench.io import save_tensors

    e = torch.nn.functional.normalize(torch.tensor(embedding, dtype=torch.float32), dim=-1)  # [V, D]
    probs = torch.full((e.shape[0], 5), 0.2)
    save_tensors({"embedding": e, "probs.shape": probs, "probs.colour": torch.full((e.shape[0], 6), 1 / 6)}, d / READOUT_FILE)


def test_report_with_claims_writes_the_block_claims_json_and_pictures(tmp_path, registration):
    """sds, sds@7.5 and vsd on every prompt, image replications of two arms, diversity read-outs: the real document's
    C1-C6 are judged, the claims whose arms were not run are untestable, and only the results block changes."""
    from PIL import Image

    from sdbench.cli import main
    from sdbench.trial import TrialConfig, resolve

    run = tmp_path / "run"
    doc = tmp_path / "docs" / "claims.md"
    doc.parent.mkdir()
    doc.write_text(DOC.read_text(encoding="utf-8"), encoding="utf-8")
    configs = {
        (arm, rep): resolve(TrialConfig(prompt="a cube", loss="vsd" if arm == "vsd" else "sds", representation=rep, prior="toy2"),
                            [f"trial.arm={arm}", *registration.arms[arm].overrides]).config_dict()
        for arm in ("sds", "sds@7.5", "vsd")
        for rep in ("gaussians", "image")
    }  # fmt: skip
    S, T, A = (set(registration.subsets[k]) for k in "STA")
    level = _levels(registration.subsets["X"] + registration.subsets["A"], 3)
    rng = np.random.default_rng(4)
    for p, base in level.items():
        for seed in (0, 1):
            noise = float(rng.normal(0, 0.3))
            for arm in ("sds", "sds@7.5", "vsd"):
                m = {
                    "toy_chroma_error": {"sds": 8.0, "sds@7.5": 1.0, "vsd": 1.2}[arm] + 0.1 * base + noise,  # G1(sds) holds
                    "toy_detail": {"sds": 0.3, "sds@7.5": 0.3, "vsd": 0.32}[arm] * (1 + 0.1 * noise) if p in T else float("nan"),
                    "toy2_acc": {"sds": 0.9, "sds@7.5": 0.5, "vsd": 0.7}[arm] + 0.05 * noise,
                    "toy_lightness_error": -1.0 + noise,
                    "toy_delta_e": {"sds": 9.0, "sds@7.5": 4.0, "vsd": 3.0}[arm] + noise,
                }
                loss = "vsd" if arm == "vsd" else "sds"
                d = _write(run, arm, p, seed, m, loss=loss, config=configs[(arm, "gaussians")])
                if seed == 0 and p in ("a red sphere", "a green cube"):
                    (d / "views").mkdir()
                    colour = (200, 30, 30) if arm == "sds" else (120, 60, 60)
                    Image.new("RGB", (8, 8), colour).save(d / "views" / "000.png")
                if p in A:  # sds collapses (both seeds the same object), vsd does not
                    v = rng.normal(size=(8, 4))
                    _readout(d, v if arm != "sds" else np.ones((8, 4)) + 0.01 * seed)
                if arm != "vsd" and p in S:  # image replication: C3 as on 3DGS, C1 reversed
                    img = {**m, "toy2_acc": 1.4 - m["toy2_acc"]}
                    _write(run, arm, p, seed, img, loss=loss, rep="image", config=configs[(arm, "image")])
    before = doc.read_text(encoding="utf-8")
    j = C.write_claims(run, doc, reference=lambda prompt, d: 0.5)
    r = {x.claim.id: x for x in j.claims}
    assert r["C3"].verdict == "reproduced"  # SDS at 100 over-saturates against 7.5 by ~7 C*
    assert r["C4"].verdict == "reproduced"  # VSD less saturated than SDS
    assert r["C1"].verdict == "reproduced" and r["C1"].marginals["sds"]["prompts"] == 14
    assert 0 <= r["C1"].marginals["sds"]["wilson_low"] <= r["C1"].marginals["sds"]["share"] <= 1
    assert r["C2"].gate.passed and r["C2"].verdict == "not reproduced"  # sds@7.5 over-smooths, but sds as much
    assert r["C6"].verdict == "reproduced" and r["C6"].gate.passed  # G5: sds's distance 0 is 0.5 below the reference
    assert r["C7"].verdict == "untestable here" and "arm ism not in the sweep" in r["C7"].detail
    assert r["C22"].verdict == "untestable here"
    assert r["C3"].replications and r["C3"].replications[0]["representation"] == "image"
    assert "sign flips" not in r["C3"].detail and r["C1"].detail.endswith("; the sign flips on image")
    assert [x["key"] for x in r["C3"].secondary] == ["toy_lightness_error"]  # toy_contrast_error was not recorded
    after = doc.read_text(encoding="utf-8")
    head, tail = before.split(C.START)[0], before.split(C.END)[1]
    assert after.startswith(head + C.START) and after.endswith(C.END + tail)
    block = after.split(C.START)[1].split(C.END)[0]
    assert "| C3 |" in block and "**reproduced**" in block and "`toy_acc` → `toy2_acc`" in block
    assert "Replications on other representations" in block and "| C3 | `sds` − `sds@7.5` |" in block
    assert "images/claims-C3.png" in block and (doc.parent / "images" / "claims-C3.png").is_file()
    assert (doc.parent / "images" / "claims-pareto.png").is_file() and "### Appendix: per-prompt tables" in block
    saved = json.loads((run / "claims.json").read_text())
    assert [c["id"] for c in saved["claims"]] == [f"C{i}" for i in range(1, 31)]
    assert saved["registration"]["metrics"]["toy_acc"]["key"] == "toy2_acc" and saved["analysis"]["seed"] == 21
    # rerunning rewrites the block, not the document around it
    C.write_claims(run, doc, reference=lambda prompt, d: 0.5)
    assert doc.read_text(encoding="utf-8") == after
    # the command line: same block (G5's default reference needs the v2 evaluator: without it, a note)
    assert main(["report", str(run), "--no-fid", "--claims", str(doc)]) == 0
    assert load_result(next((run / "trials").iterdir())).arm in ("sds", "sds@7.5", "vsd")
    assert "| C3 |" in doc.read_text(encoding="utf-8")
    untouched = doc.read_text(encoding="utf-8")  # --claims-with must name a sweep directory: exit 2, nothing written
    assert main(["report", str(run), "--no-fid", "--claims", str(doc), "--claims-with", str(tmp_path / "nowhere")]) == 2
    assert doc.read_text(encoding="utf-8") == untouched


def test_expected_pairs_count_the_seeds_run_on_the_claims_own_subset(tmp_path, registration):
    """Amendment 1's design: X at seed 0 only, A at seeds 0 and 1. A claim on X expects one pair per prompt of X, so a
    prompt of X that was not run counts once as dropped, and A's second seed does not inflate X's expectation."""
    X, A = registration.subsets["X"], registration.subsets["A"]
    for k, p in enumerate(X[:6]):
        _write(tmp_path, "base", p, 0, {"toy_chroma_error": 0.0})
        _write(tmp_path, "null", p, 0, {"toy_chroma_error": float(k)})
    for p in A:
        for s in (0, 1):
            _write(tmp_path, "base", p, s, {"toy_chroma_error": 0.0})
    e = C.judge(_results(tmp_path), _registration(registration, _claim("N", "null", subset="X")), reference=None).claims[0]
    assert (e.estimate.prompts, e.estimate.pairs, e.estimate.dropped) == (6, 6, len(X) - 6)


def test_running_hours_exclude_the_pauses_of_a_resumed_sweep():
    """Three trials: two overlapping (workers in parallel), one after a one-hour pause; a trial with no timings."""

    def t(finished: float, seconds: float, eval_seconds: float = 0.0) -> TrialResult:
        cost = Cost(seconds=seconds, eval_seconds=eval_seconds, finished_at=finished)
        return TrialResult("a cube", "sds", "gaussians", "toy2", 0, Budget("steps", 1), "completed", cost=cost)

    trials = [t(1000.0, 600.0), t(1300.0, 500.0, 100.0), t(1300.0 + 3600 + 900, 900.0), TrialResult(
        "a cube", "sds", "gaussians", "toy2", 0, Budget("steps", 1), "completed")]  # fmt: skip
    # [400, 1000] ∪ [700, 1300] = 900 s; then [4900, 5800] = 900 s; the pause is not counted
    assert C.running_hours(trials) == pytest.approx(1800 / 3600)
    assert math.isnan(C.running_hours(trials[3:]))


def test_the_registered_exploratory_comparisons_are_uncorrected_and_outside_the_family(tmp_path, registration):
    """VSD 5 units less saturated than SDS at 7.5 on every prompt of S: the row 'C4 against sds@7.5' finds it, as
    expected; the cut-off table gives each VDM arm's own mean; none of it enters Holm's family."""
    S = registration.subsets["S"]
    base = _levels(S)
    for p in S:
        _write(tmp_path, "sds@7.5", p, 0, {"toy_chroma_error": base[p]})
        _write(tmp_path, "vsd", p, 0, {"toy_chroma_error": base[p] - 5.0 + 0.1 * len(p) % 3})
        _write(tmp_path, "vdm_nodca", p, 0, {"toy_chroma_error": 8.0})
        _write(tmp_path, "vdm", p, 0, {"toy_chroma_error": 2.0})
    arms = {a: C.Arm(a, "sds") for a in ("sds@7.5", "vsd", "vdm_nodca", "vdm")}
    j = C.judge(_results(tmp_path), C.Registration((), arms, registration.subsets), reference=None)
    assert j.family == 0
    rows = {(x["ref"], x["a"], x["b"]): x for x in j.exploratory}
    assert set(rows) == {("C4", "vsd", "sds@7.5")}  # every other row lacks an arm
    c4 = rows[("C4", "vsd", "sds@7.5")]
    expected = float(np.mean([-5.0 + 0.1 * len(p) % 3 for p in S]))
    assert c4["estimate"] == pytest.approx(expected) and c4["high"] < 0 and c4["as_expected"] is True
    assert c4["prompts"] == len(S)
    assert [(x["arm"], round(x["estimate"], 6)) for x in j.cutoff] == [("vdm_nodca", 8.0), ("vdm", 2.0)]
    md = C.markdown(j, _results(tmp_path), tmp_path / "images", tmp_path)
    assert "| C4 | `toy_chroma_error` · S | `vsd` − `sds@7.5` | ↓ |" in md and "as expected" in md
    assert "| `vdm_nodca` | none | 8 [8, 8] |" in md
    assert C.to_json(j)["exploratory"][0]["b"] == "sds@7.5"


def test_the_pareto_plot_takes_each_arms_seconds_timed_alone_where_given(tmp_path, registration):
    """The sweep's trials say 0.2 s/step for every arm (_write); timed alone, `good` costs 0.1 and `base` 0.3: the
    rows, the front and the table use the timings and keep the sweep's median beside them."""
    X = registration.subsets["X"]
    for p in X[:5]:
        _write(tmp_path, "base", p, 0, {"toy_delta_e": 10.0})
        _write(tmp_path, "good", p, 0, {"toy_delta_e": 12.0})
    timings = tmp_path / "claims_cost.json"
    timings.write_text(json.dumps({"results": {"arms": {"base": {"seconds_per_step": 0.3}, "good": {"seconds_per_step": 0.1}}}}))
    sel = C.select(_results(tmp_path))
    rows = {r["arm"]: r for r in C.pareto(sel, registration.subsets, C.read_cpu_timings(timings))}
    assert (rows["base"]["seconds_per_step"], rows["good"]["seconds_per_step"]) == (0.3, 0.1)
    assert rows["base"]["sweep_seconds_per_step"] == pytest.approx(0.2)
    assert rows["good"]["front_seconds_per_step"] and rows["base"]["front_seconds_per_step"]  # cheaper vs better
    plain = {r["arm"]: r for r in C.pareto(sel, registration.subsets)}
    assert not plain["good"]["front_seconds_per_step"]  # at equal sweep seconds `base` dominates it
    arms = {a: C.Arm(a, "sds") for a in ("base", "good")}
    reg = C.Registration((), arms, registration.subsets)
    j = C.judge(_results(tmp_path), reg, reference=None)
    j.cpu_timings, j.cpu_timings_source = C.read_cpu_timings(timings), str(timings)
    md = C.markdown(j, _results(tmp_path), tmp_path / "images", tmp_path)
    assert "| arm | s/step (timed alone) | s/step in the sweep (median) |" in md and "| `good` | 0.1 | 0.2 |" in md
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": {}}')
    with pytest.raises(UserError, match="not a benchmarks/claims_cost.py result"):
        C.read_cpu_timings(bad)


def test_equal_nfe_pairs_each_arm_at_the_budget_that_spends_the_baselines_nfe(tmp_path, registration):
    """Confirmatory sweep: `sds` (2 NFE/step) and `vsd` (4 + 1 backward) at 500 steps, vsd 5 below sds. The equal-NFE
    sweep, read with --claims-with: `vsd` at 200 steps (1000 NFE) 5 *above* sds, and at 210 steps (1050: 5 % off,
    the edge, not the closest). The equal-steps budget is the one every arm ran at; at equal NFE `sds` keeps its
    trials, `vsd` gets the 200-step ones, and the flipped sign is named."""
    S = registration.subsets["S"]
    base = _levels(S)
    main, extra = tmp_path / "main", tmp_path / "nfe"
    for k, p in enumerate(S):
        _write(main, "sds", p, 0, {"toy_chroma_error": base[p]})
        _write(main, "vsd", p, 0, {"toy_chroma_error": base[p] - 5.0 + 0.1 * k}, loss="vsd", nfe=2000, nfe_with_grad=500)
        _write(
            extra, "vsd", p, 0, {"toy_chroma_error": base[p] + 5.0 + 0.1 * k}, loss="vsd", steps=200, nfe=800, nfe_with_grad=200
        )
        _write(extra, "vsd", p, 0, {"toy_chroma_error": base[p]}, loss="vsd", steps=210, nfe=840, nfe_with_grad=210)
    claim = C.Claim(
        "C4", "ProlificDreamer", "VSD reduces over-saturation.", "toy_chroma_error", False, "S", "vsd", "sds", "down", 2.3, None
    )
    reg = C.Registration((claim,), {"sds": C.Arm("sds", "sds"), "vsd": C.Arm("vsd", "vsd")}, registration.subsets)
    results = _results(main) + _results(extra)
    j = C.judge(results, reg, reference=None)
    assert j.selection.budget == "steps:500"  # 200 and 210 hold vsd only
    assert j.equal_nfe["sds"]["budget"] == "steps:500" and j.equal_nfe["sds"]["same_as_equal_steps"]
    assert j.equal_nfe["vsd"]["budget"] == "steps:200" and j.equal_nfe["vsd"]["nfe"] == 1000
    (r,) = j.claims
    assert r.verdict == "reproduced" and r.estimate.estimate == pytest.approx(-5.0 + 0.1 * np.mean(range(len(S))))
    e = r.equal_nfe
    assert e["estimate"] == pytest.approx(5.0 + 0.1 * np.mean(range(len(S)))) and e["sign_differs"] and not e["same_trials"]
    assert e["reading"] == "opposite" and e["budgets"] == ["steps:200", "steps:500"]
    md = C.markdown(j, results, tmp_path / "images", main)
    assert "**Equal NFE** (secondary). Target 1000 NFE per trial" in md and "| `vsd` | `steps:200` | 1000 | own |" in md
    assert "| C4 | `vsd` − `sds` | `steps:200` / `steps:500` |" in md and "| opposite | **differs** |" in md
    n = 2 * len(S)
    assert f"Exploratory sweep `nfe`: {n} trials ({n} completed)" in md and f"Sweep `main`: {n} trials" in md
    assert C.to_json(j)["claims"][0]["equal_nfe"]["reading"] == "opposite"
    # an arm whose only other budget is more than 5 % off has no equal-NFE trials, and is named
    far = tmp_path / "far"
    for p in S:
        _write(far, "vsd", p, 0, {"toy_chroma_error": 0.0}, loss="vsd", steps=220, nfe=880, nfe_with_grad=220)
    j2 = C.judge(_results(main) + _results(far), reg, reference=None)
    assert "vsd" not in j2.equal_nfe and j2.claims[0].equal_nfe is None
