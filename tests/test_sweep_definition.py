"""Sweep definition files (TOML): groups, defaults, selection from the command line, the shipped files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sdbench.budget import Budget
from sdbench.errors import UserError
from sdbench.sweep import load_definition, plan, restrict
from tests.conftest import run_cli

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "p.txt").write_text("# prompts\na red cube\n\na blue sphere\n", encoding="utf-8")
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_groups_inherit_the_top_level_and_extend_its_overrides(tmp_path):
    path = write(
        tmp_path,
        """
prompts = "p.txt"
seeds = [0, 1]
set = ["trial.eval_views=4"]
[[group]]
losses = ["sds", "vdm"]
representations = ["image"]
budget = "steps:20"
[[group]]
losses = ["csd"]
representations = ["image", "2d"]
budget = "nfe:40"
seeds = [3]
set = ["loss.grad_normalize=true"]
""",
    )
    g1, g2 = load_definition(path)
    assert g1.prompts == ("a red cube", "a blue sphere") and g1.seeds == (0, 1) and g1.budget == Budget("steps", 20)
    assert g1.overrides == ("trial.eval_views=4",) and g1.priors == ("toy",)
    assert (
        g2.seeds == (3,) and g2.budget == Budget("nfe", 40) and g2.overrides == ("trial.eval_views=4", "loss.grad_normalize=true")
    )
    with pytest.raises(UserError, match="duplicate points"):  # two groups naming the same trials
        plan([g1, dataclasses.replace(g1, losses=("vdm",))])
    grid = plan([g1, g2])  # g2's image and its alias 2d are one representation
    assert len(grid) == 2 * 2 * 2 + 1 * 2 * 1
    specs = [s for _, s in grid]
    assert all(s.trial.eval_views == 4 for s in specs)
    assert [s.loss.grad_normalize for s in specs if s.trial.loss == "csd"] == [True, True]


def test_a_file_without_groups_is_one_grid_and_prompts_may_be_inline(tmp_path):
    (cfg,) = load_definition(write(tmp_path, 'prompts = ["a red cube", "a red cube", " a green cone "]\nlosses = "sds"\n'))
    assert cfg.prompts == ("a red cube", "a green cone") and cfg.losses == ("sds",) and cfg.representations == ("gaussians",)


@pytest.mark.parametrize(
    "text,fragment",
    [
        ('prompts = "p.txt"\nlosses = ["sds"]\nworkers = 3\n', "unknown key 'workers'"),
        ('prompts = "p.txt"\n', "'losses' is missing"),
        ('prompts = "missing.txt"\nlosses = ["sds"]\n', "does not exist"),
        ('prompts = "p.txt"\nlosses = ["sds"]\nseeds = "0"\n', "'seeds' must be"),
        ('prompts = "p.txt"\nlosses = ["sds"]\nbudget = "hours:2"\n', "unknown budget kind"),
        ('prompts = "p.txt"\nlosses = [1]\n', "'losses' must be a list of strings"),
        ('prompts = "p.txt"\nlosses = ["sds"\n', "not valid TOML"),
        ('prompts = "p.txt"\n[[group]]\nlosses = ["sds"]\nstep = 3\n', "group 1: unknown key 'step'"),
    ],
)
def test_bad_definitions_are_one_line_errors(tmp_path, text, fragment):
    with pytest.raises(UserError, match=fragment):
        load_definition(write(tmp_path, text))


def test_a_definition_may_start_from_a_base(tmp_path):
    """``base``: the base's groups with this file's top-level keys (``set`` extended); its own groups replace them;
    the base's prompts file is found next to the base, wherever the derived file lives."""
    write(
        tmp_path,
        'prompts = "p.txt"\nbudget = "steps:30"\nset = ["trial.eval_views=4"]\n[[group]]\nlosses = ["sds"]\n'
        'set = ["trial.arm=a"]\n[[group]]\nlosses = ["csd"]\nrepresentations = ["nerf"]\n',
    )
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "rep.toml").write_text('base = "../s.toml"\nrepresentations = ["image"]\nset = ["trial.view_dependent=false"]\n')
    a, c = load_definition(sub / "rep.toml")
    assert a.prompts == ("a red cube", "a blue sphere") and a.budget == Budget("steps", 30)
    assert a.representations == ("image",) and c.representations == ("nerf",)  # a group's own key wins
    assert a.overrides == ("trial.eval_views=4", "trial.view_dependent=false", "trial.arm=a")
    (sub / "own.toml").write_text('base = "../s.toml"\n[[group]]\nlosses = ["vsd"]\nbudget = "steps:12"\n')
    (only,) = load_definition(sub / "own.toml")
    assert only.losses == ("vsd",) and only.budget == Budget("steps", 12) and only.overrides == ("trial.eval_views=4",)
    (sub / "some.toml").write_text('base = "../s.toml"\nbase_groups = ["b"]\n')
    (tmp_path / "s.toml").write_text(
        (tmp_path / "s.toml")
        .read_text()
        .replace("[[group]]\nlosses", "[[group]]\nname = 'a'\nlosses", 1)
        .replace('[[group]]\nlosses = ["csd"]', "[[group]]\nname = 'b'\nlosses = [\"csd\"]")
    )
    (only_b,) = load_definition(sub / "some.toml")
    assert only_b.losses == ("csd",)
    (sub / "typo.toml").write_text('base = "../s.toml"\nbase_groups = ["c"]\n')
    with pytest.raises(UserError, match="'c', not groups of"):
        load_definition(sub / "typo.toml")
    (sub / "loop.toml").write_text('base = "loop.toml"\nlosses = ["sds"]\n')
    with pytest.raises(UserError, match="cycle"):
        load_definition(sub / "loop.toml")
    (sub / "gone.toml").write_text('base = "nowhere.toml"\n')
    with pytest.raises(UserError, match=r"nowhere.toml \(the base of"):
        load_definition(sub / "gone.toml")


def test_restrict_selects_part_of_the_grid(tmp_path):
    groups = load_definition(
        write(
            tmp_path,
            """
prompts = "p.txt"
[[group]]
losses = ["sds", "vdm"]
representations = ["image", "gaussians"]
[[group]]
losses = ["csd"]
""",
        )
    )
    (only,) = restrict(groups, losses=["vdm"], representations=["2d"])
    assert only.losses == ("vdm",) and only.representations == ("image",)
    assert len(restrict(groups, representations=["3dgs"])) == 2
    with pytest.raises(UserError, match="no grid point"):
        restrict(groups, losses=["ism"])


def test_the_shipped_sweep_definitions_plan():
    """Every file in sweeps/ validates (plugins, config keys, prompts) without weights."""
    sizes = {}
    for path in sorted(SWEEPS.glob("*.toml")):
        sizes[path.stem] = len(plan(load_definition(path)))
    assert sizes["paper-dreammapping"] == 3 and sizes["paper-baselines"] == 15 and sizes["paper-dreammapping-ablations"] == 18
    study = load_definition(SWEEPS / "toy-study.toml")
    losses = {loss for g in study for loss in g.losses}
    assert {
        "sds",
        "csd",
        "nfsd",
        "ism",
        "vsd",
        "vdm",
        "vdm_nodca",
        "vdm_cut100",
        "vdm_cut500",
        "vdm_linear",
        "vdm_noise",
    } <= losses
    assert {g.budget.kind for g in study} == {"steps", "nfe"} and all(len(g.seeds) == 3 for g in study)
    from sdbench.world.grammar import parse
    from sdbench.world.scenes import COLOURS, SHAPES

    parsed = [parse(p) for p in study[0].prompts]
    assert len(parsed) >= 8 and {p.shape for p in parsed} == set(SHAPES) and {p.colour for p in parsed} == set(COLOURS)


def test_cli_errors_for_definitions_are_one_line(tmp_path):
    bad = write(tmp_path, 'prompts = "p.txt"\nlosses = ["sds"]\nworkers = 3\n')
    proc = run_cli("sweep", str(bad), "--out", str(tmp_path / "o"))
    assert (
        proc.returncode == 2
        and proc.stderr.strip().splitlines() == [proc.stderr.strip()]
        and "unknown key 'workers'" in proc.stderr
    )
    proc = run_cli("sweep", str(tmp_path / "p.txt"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "--loss is required" in proc.stderr
    proc = run_cli("sweep", str(SWEEPS / "paper-dreammapping.toml"), "--loss", "ism", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no grid point" in proc.stderr


def test_a_sweep_on_missing_real_weights_is_refused_before_any_trial(tmp_path, monkeypatch):
    monkeypatch.delenv("SDBENCH_SD21_PATH", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    proc = run_cli("sweep", str(SWEEPS / "paper-dreammapping.toml"), "--out", str(tmp_path / "o"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "SDBENCH_SD21_PATH" in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_definition_with_groups_runs_resumes_and_renders_markdown(tmp_path, tiny_pixel_checkpoint):
    path = write(
        tmp_path,
        f'''
prompts = ["a red cube"]
priors = ["{tiny_pixel_checkpoint}"]
representations = ["image"]
set = ["trial.eval_views=2", "trial.turntable_frames=2"]
[[group]]
losses = ["sds", "vdm"]
budget = "steps:3"
[[group]]
losses = ["csd"]
budget = "nfe:6"
''',
    )
    out = tmp_path / "out"
    args = ["sweep", str(path), "--out", str(out), "--wandb", "disabled", "--no-fid", "--workers", "1"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import csv
    import json

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert sorted((r["loss"], r["budget"], r["status"]) for r in rows) == [
        ("csd", "nfe:6", "completed"),
        ("sds", "steps:3", "completed"),
        ("vdm", "steps:3", "completed"),
    ]
    # 2 + 3 + 3: step 0 has ω2 = 0 (no negative call); the budget is checked before each step
    assert [r["cost_nfe"] for r in rows if r["loss"] == "csd"] == ["8"]
    assert len(json.loads((out / "sweep.json").read_text())["sweep"]["groups"]) == 2
    again = run_cli(*args)
    assert again.returncode == 0 and "3 kept from before" in again.stdout.replace("\n", " ")
    doc = tmp_path / "docs" / "study.md"
    doc.parent.mkdir()
    doc.write_text(
        "# Study\n\nReading written by hand.\n\n<!-- sdbench:tables -->\nold\n<!-- /sdbench:tables -->\n\nMore text.\n"
    )
    proc = run_cli("report", str(out), "--no-fid", "--markdown", str(doc))
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = doc.read_text()
    assert text.startswith("# Study\n\nReading written by hand.") and text.endswith("More text.\n") and "old" not in text
    assert "### Budget steps:3" in text and "### Budget nfe:6" in text and "| vdm | 1 |" in text
    assert (doc.parent / "images" / "study-image.png").is_file()


def test_a_metric_that_cannot_score_a_prompt_is_refused_while_planning(tmp_path):
    """A truth-based metric named for an ambiguous prompt: one line, exit 2, before any trial (it used to fail on
    every worker, after the trials before it had run)."""
    (tmp_path / "a.txt").write_text("a red cube\na cube\n")
    bad = write(tmp_path, 'prompts = "a.txt"\npriors = ["toy2"]\nlosses = ["sds"]\nset = [\'trial.metrics=["toy", "toy2"]\']\n')
    with pytest.raises(UserError, match="metric toy cannot run on 'a cube': the prompt leaves its colour or shape open"):
        plan(load_definition(bad))
    proc = run_cli("sweep", str(bad), "--out", str(tmp_path / "o"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "metric toy cannot run on 'a cube'" in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()
    ok = write(tmp_path, 'prompts = "a.txt"\npriors = ["toy2"]\nlosses = ["sds"]\nset = [\'trial.metrics=["toy2"]\']\n')
    assert len(plan(load_definition(ok))) == 2  # the read-out metric scores ambiguous prompts
    # one trial: `sdbench run` refuses it the same way before optimising, and writes nothing
    args = ("run", "--prompt", "a cube", "--loss", "sds", "--prior", "toy2", "--steps", "2", "--out", str(tmp_path / "t"))
    proc = run_cli(*args, "--set", 'trial.metrics=["toy"]')
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "metric toy cannot run on 'a cube'" in lines[0], proc.stderr
    assert not (tmp_path / "t").exists()
