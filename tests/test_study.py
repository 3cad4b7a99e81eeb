"""Study documents: equal-NFE filling, paired differences against SDS, the ablation table."""

from __future__ import annotations

from pathlib import Path

from sdbench.results import GroupKey, TrialResult
from sdbench.study import _paired, fill_equal_nfe, markdown


def result(loss: str, budget: tuple[str, int], prompt: str, seed: int, nfe: int, sat: float, rep: str = "image") -> TrialResult:
    return TrialResult.from_dict(
        {
            "prompt": prompt,
            "loss": loss,
            "representation": rep,
            "prior": "toy",
            "seed": seed,
            "status": "completed",
            "budget": {"kind": budget[0], "value": budget[1]},
            "metrics": {"toy_acc": 1.0, "toy_saturation_error": sat},
            "cost": {"nfe": nfe, "seconds": 1.0},
        }
    )


def test_equal_steps_trials_fill_the_equal_nfe_table_only_when_their_nfe_matches():
    groups = {
        GroupKey("toy", "sds", "image", "steps:10"): [result("sds", ("steps", 10), "p", 0, 20, 0.1)],
        GroupKey("toy", "csd", "image", "steps:10"): [result("csd", ("steps", 10), "p", 0, 30, 0.1)],
        GroupKey("toy", "csd", "image", "nfe:20"): [result("csd", ("nfe", 20), "p", 0, 21, 0.1)],
        GroupKey("toy", "ism", "image", "steps:10"): [
            result("ism", ("steps", 10), "p", 0, 20, 0.1),
            result("ism", ("steps", 10), "p", 1, 24, 0.1),
        ],
    }
    added = fill_equal_nfe(groups)
    assert added == {GroupKey("toy", "sds", "image", "nfe:20")}  # csd has its own; ism's NFE varies
    assert groups[GroupKey("toy", "sds", "image", "nfe:20")] is groups[GroupKey("toy", "sds", "image", "steps:10")]


def test_paired_differences_use_matching_prompt_and_seed():
    a = [result("vdm", ("steps", 1), p, s, 2, sat) for p, s, sat in [("x", 0, 0.3), ("x", 1, 0.5), ("y", 0, 0.9)]]
    b = [result("sds", ("steps", 1), p, s, 2, sat) for p, s, sat in [("x", 0, 0.1), ("x", 1, 0.2), ("z", 0, 0.0)]]
    # pairs (x,0): 0.2 and (x,1): 0.3 → mean 0.25; t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.0707 / 1.414 = 0.635
    assert _paired(a, b, "toy_saturation_error") == "0.25 ± 0.64"


def test_markdown_has_budget_tables_ablations_and_marks_filled_rows(tmp_path):
    rs = []
    for seed in (0, 1):
        rs += [
            result("sds", ("steps", 10), "a red cube", seed, 20, 0.4),
            result("vdm", ("steps", 10), "a red cube", seed, 20, 0.1),
        ]
        rs += [
            result("vdm_nodca", ("steps", 10), "a red cube", seed, 20, 0.3),
            result("vdm_cut500", ("steps", 10), "a red cube", seed, 20, 0.0),
        ]
        rs += [result("csd", ("nfe", 20), "a red cube", seed, 21, 0.2)]
    text = markdown([(Path(f"/nonexistent/{i}"), r) for i, r in enumerate(rs)], tmp_path, "doc")
    assert "### Budget steps:10" in text and "### Budget nfe:20" in text
    assert "| sds † | 2 |" in text and "| csd | 2 |" in text
    assert "| vdm | 0 | -0.3 |" in text  # paired Δ saturation vs SDS, identical in both seeds: no CI
    assert "VDM, no DCA" in text and "VDM, DCA cut-off 500" in text and "SDS (reference)" in text
    # ablation rows carry the paired saturation difference to VDM (cut-off 300): 0.3 − 0.1, 0.0 − 0.1
    assert "| image | VDM, no DCA | 2 | 0.3 | 0.2 |" in text and "| image | VDM, DCA cut-off 500 | 2 | 0 | -0.1 |" in text
    assert (
        "| image | SDS (reference) | 2 | 0.4 | 0.3 |" in text
        and "| image | VDM, DCA cut-off 300 (default) | 2 | 0.1 | — |" in text
    )
