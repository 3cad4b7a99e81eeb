"""The ``sdbench`` command line (typer). Heavy libraries are imported inside commands.

Errors follow the contract: bad input → ``error: ...`` on one line of stderr and exit status 2;
a trial that fails → exit 1; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from sdbench.errors import TrialFailed, UserError

app = typer.Typer(
    name="sdbench",
    help="Benchmark score-distillation losses (SDS, CSD, NFSD, ISM, VSD, VDM+DCA) across representations and priors.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_DEBUG = {"on": False}


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _DEBUG["on"] = debug


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr)


# --------------------------------------------------------------------- list
@app.command("list")
def list_plugins() -> None:
    """Every registered loss, representation, prior and metric, with where it comes from."""
    from rich.markup import escape
    from rich.table import Table

    from sdbench import registry

    console = _console()
    for kind, reg in registry.ALL.items():
        table = Table(title=kind, title_justify="left", show_lines=False, expand=False)
        table.add_column("name", style="bold")
        table.add_column("summary")
        table.add_column("source")
        table.add_column("status")
        for entry in reg.load_all():
            name = entry.name + (f" ({', '.join(entry.aliases)})" if entry.aliases else "")
            status = f"[red]broken: {escape(entry.error or '')}[/red]" if entry.broken else "[green]ok[/green]"
            table.add_row(escape(name), escape(entry.summary), escape(entry.source), status)
        console.print(table)


# -------------------------------------------------------------------- world
@app.command("world")
def world() -> None:
    """The toy world's vocabulary: the prompts the embedded toy priors understand."""
    from sdbench.world.grammar import describe

    console = _console()
    for name, prior in (("v1", "toy"), ("v2", "toy2")):
        form, *lines = describe(name)
        console.print(f"[bold]Toy world {name} prompts (--prior {prior}):[/bold] {form}")
        for line in lines:
            console.print(f"  {line}")
    console.print('  example:      sdbench run --prompt "a red cube" --loss sds')
    console.print('                sdbench run --prior toy2 --prompt "a red striped cube with a face" --loss sds')


# ---------------------------------------------------------------------- run
def _budget(steps: int | None, budget: str | None):
    from sdbench.budget import Budget

    if steps is not None and budget is not None:
        raise UserError("pass either --steps or --budget, not both")
    if budget is not None:
        return Budget.parse(budget)
    return Budget("steps", 500 if steps is None else steps)


@app.command("run")
def run(
    prompt: str = typer.Option(..., "--prompt", help='Text prompt, e.g. "a red cube".'),
    loss: str = typer.Option(..., "--loss", help="Loss name (see 'sdbench list')."),
    rep: str = typer.Option("gaussians", "--rep", help="Representation name."),
    prior: str = typer.Option("toy", "--prior", help="Prior name, or a path to a local diffusers checkpoint folder."),
    steps: int | None = typer.Option(None, "--steps", help="Optimisation steps (default 500)."),
    budget: str | None = typer.Option(None, "--budget", help="steps:N, seconds:S or nfe:K."),
    seed: int = typer.Option(0, "--seed"),
    out: Path | None = typer.Option(None, "--out", help="Trial directory (default runs/<prompt>-<loss>-<rep>-s<seed>)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config field: --set loss.cfg_scale=7.5"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Run one trial and write its directory (result.json, views.png, ...)."""
    from sdbench import trial as trial_mod
    from sdbench.io import slug
    from sdbench.trial import TrialConfig

    cfg = TrialConfig(prompt=prompt, loss=loss, representation=rep, prior=prior, seed=seed, budget=_budget(steps, budget))
    spec = trial_mod.resolve(cfg, overrides)
    trial_mod.check_metrics(spec)
    out = out or Path("runs") / f"{slug(prompt)}-{spec.trial.loss}-{spec.trial.representation}-s{seed}"
    trial_mod.check_writable(out)
    result = trial_mod.run_trial(spec, out, progress=not quiet)
    _print_result(result, Path(out))


@app.command("sweep")
def sweep(
    prompts_file: Path = typer.Argument(
        ..., help="Prompts file (UTF-8, one prompt per line, '#' comments) or a sweep definition (.toml, see sweeps/)."
    ),
    loss: list[str] = typer.Option(
        [], "--loss", help="Loss name(s); repeat or comma-separate; 'all' for every loss. With a .toml: only these."
    ),
    rep: list[str] = typer.Option([], "--rep", help="Representation name(s) (default gaussians). With a .toml: only these."),
    prior: list[str] = typer.Option(
        [], "--prior", help="Prior name(s) or local checkpoint folder(s) (default toy). With a .toml: only these."
    ),
    seeds: str | None = typer.Option(None, "--seeds", help="Comma list of seeds, e.g. 0,1,2 (default 0)."),
    steps: int | None = typer.Option(None, "--steps", help="Optimisation steps per trial (default 500)."),
    budget: str | None = typer.Option(None, "--budget", help="steps:N, seconds:S or nfe:K, the same for every trial."),
    workers: int | None = typer.Option(None, "--workers", help="Concurrent trials (default: the CPUs Ray sees)."),
    address: str | None = typer.Option(None, "--address", help="Join an existing Ray cluster ('auto' or ray://host:port)."),
    gpus_per_trial: float | None = typer.Option(
        None,
        "--gpus-per-trial",
        help="GPU share of each trial, e.g. 0.25 packs 4 trials per GPU (default: the GPUs split over the workers).",
    ),
    out: Path | None = typer.Option(None, "--out", help="Sweep directory (default runs/<prompts-file-name>)."),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Where trials' files travel from the nodes to --out: a path every node mounts, or a URI such as "
        "s3://bucket/prefix (default OUT/ray; checked from every node before a cluster sweep runs).",
    ),
    retries: int = typer.Option(
        3, "--retries", help="Times a trial whose attempt died (its node lost, its process killed) is run again."
    ),
    wandb: str = typer.Option("offline", "--wandb", help="offline (default), online, or disabled."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config field for every trial."),
    no_fid: bool = typer.Option(False, "--no-fid", help="Skip the per-group 3D-FID in the report."),
) -> None:
    """Run (or resume) the grid prompt x loss x representation x seed on Ray; ends with a report.

    With a sweep definition (.toml), the grid comes from the file; --seeds, --steps/--budget replace
    its values, --set adds overrides, and --loss/--rep/--prior select a part of it.
    """
    import dataclasses

    from sdbench.sweep import SweepConfig, load_definition, read_prompts, restrict, run_sweep

    seed_list = _seeds(seeds) if seeds is not None else None
    if prompts_file.suffix.lower() == ".toml":
        groups = restrict(load_definition(prompts_file), loss, rep, prior)
        replace: dict = {}
        if seed_list is not None:
            replace["seeds"] = seed_list
        if steps is not None or budget is not None:
            replace["budget"] = _budget(steps, budget)
        groups = [dataclasses.replace(g, **replace, overrides=(*g.overrides, *overrides)) for g in groups]
        cfg = groups if len(groups) > 1 else groups[0]
    else:
        if not loss:
            raise UserError("--loss is required with a prompts file (e.g. --loss sds,vdm, or 'all')")
        cfg = SweepConfig(
            prompts=tuple(read_prompts(prompts_file)),
            losses=tuple(loss),
            representations=tuple(rep or ["gaussians"]),
            priors=tuple(prior or ["toy"]),
            seeds=seed_list or (0,),
            budget=_budget(steps, budget),
            overrides=tuple(overrides),
        )
    out = out or Path("runs") / prompts_file.stem
    summary = run_sweep(
        cfg,
        out,
        workers=workers,
        address=address,
        wandb_mode=wandb,
        fid=not no_fid,
        gpus_per_trial=gpus_per_trial,
        storage=storage,
        retries=retries,
    )
    _print_sweep(summary)
    if summary.failed:
        raise typer.Exit(1)


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seed_list = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--seeds must be a comma list of integers, got {text!r}") from None
    if not seed_list:
        raise UserError("--seeds is empty")
    return seed_list


def _print_sweep(summary) -> None:
    """One row per (prior, loss, representation, budget): means over prompts and seeds."""
    from rich.markup import escape
    from rich.table import Table

    from sdbench.report import summarize
    from sdbench.results import HEADLINE_METRICS, GroupKey, load_results

    console = _console()
    results = load_results(sorted((summary.out / "trials").iterdir()) if (summary.out / "trials").is_dir() else [])
    columns, table = summarize(results)
    shown = [c for c in HEADLINE_METRICS if c in columns][:3]
    fids = {}
    if (summary.out / "results.csv").is_file():
        import csv

        for r in csv.DictReader((summary.out / "results.csv").open()):
            if r.get("fid"):
                fids[GroupKey(r["prior"], r.get("arm") or r["loss"], r["representation"], r["budget"])] = float(r["fid"])
    out = Table(
        title=(
            f"{summary.completed}/{summary.total} trials completed "
            f"({summary.skipped} kept from before) in {summary.seconds:.0f} s"
        ),
        title_justify="left",
    )
    for col in ("loss", "rep", "n", *(HEADLINE_METRICS[c] for c in shown), "fid", "s/step", "nfe"):
        out.add_column(col, justify="left" if col in ("loss", "rep") else "right", no_wrap=True)
    for key, row in table.items():
        n = max(v[2] for v in row.values())
        cells = [f"{row[c][0]:.3g}" if row[c][2] else "—" for c in shown]
        fid = fids.get(key)
        out.add_row(
            escape(key.loss),
            escape(key.representation),
            str(n),
            *cells,
            f"{fid:.3g}" if fid is not None else "—",
            f"{row['cost.seconds_per_step'][0]:.3f}",
            f"{row['cost.nfe'][0]:.0f}",
        )
    console.print(out)
    for trial, error in summary.failed:
        console.print(f"[red]failed[/red] {escape(trial)}: {escape(error)}")
    console.print(f"results: {(summary.out / 'results.csv').resolve()}")
    console.print(f"report:  {summary.report.resolve() if summary.report else '(none)'}")


@app.command("report")
def report(
    sweep_dir: Path = typer.Argument(..., help="A sweep directory."),
    no_fid: bool = typer.Option(False, "--no-fid"),
    markdown: Path | None = typer.Option(
        None,
        "--markdown",
        help="Also write the tables and image grids into this markdown file (text outside its markers is kept).",
    ),
    claims: Path | None = typer.Option(
        None,
        "--claims",
        help="Judge the pre-registered claims of this document (docs/claims.md) on the sweep: verdicts into its "
        "results block (only there), SWEEP/claims.json, pictures in its images/ folder.",
    ),
    gpu_timings: Path | None = typer.Option(
        None, "--gpu-timings", help="With --claims: a benchmarks/gpu.py result with per-step times, for C22 (VDM vs SDS cost)."
    ),
    cpu_timings: Path | None = typer.Option(
        None,
        "--cpu-timings",
        help="With --claims: a benchmarks/claims_cost.py result (each arm timed alone) for the Pareto plot's seconds "
        "(default: the sweep's own per-trial seconds).",
    ),
    claims_prior: str | None = typer.Option(None, "--claims-prior", help="With --claims: the prior (default: the only one)."),
    claims_budget: str | None = typer.Option(
        None,
        "--claims-budget",
        help="With --claims: the equal-steps budget, e.g. steps:500 (default: the one at which every arm ran).",
    ),
    claims_with: list[Path] = typer.Option(
        [],
        "--claims-with",
        help="With --claims: another sweep directory whose trials the judgement reads too (repeatable): the exploratory "
        "image replication and equal-NFE runs.",
    ),
) -> None:
    """(Re)build results.csv and report.html of a sweep."""
    from sdbench.report import build_report

    if not (sweep_dir / "trials").is_dir():
        raise UserError(f"{sweep_dir} is not a sweep directory (no trials/)")
    if claims is not None and not claims.is_file():
        raise UserError(f"claims document {claims} does not exist")
    for name, given in (("--gpu-timings", gpu_timings), ("--cpu-timings", cpu_timings)):
        if given is not None and not given.is_file():
            raise UserError(f"{name} {given} does not exist")
    for extra in claims_with:
        if not (extra / "trials").is_dir():
            raise UserError(f"--claims-with {extra} is not a sweep directory (no trials/)")
    path = build_report(sweep_dir, fid=not no_fid)
    _console().print(f"results: {(sweep_dir / 'results.csv').resolve()}")
    _console().print(f"report:  {path.resolve()}")
    if markdown is not None:
        from sdbench.study import write_markdown

        _console().print(f"markdown: {write_markdown(sweep_dir, markdown).resolve()}")
    if claims is not None:
        from collections import Counter

        from sdbench.claims import write_claims

        judgement = write_claims(
            sweep_dir,
            claims,
            timings=gpu_timings,
            prior=claims_prior,
            budget=claims_budget,
            controls=Path("benchmarks/results/controls.json"),
            cpu_timings=cpu_timings,
            with_dirs=claims_with,
        )
        counts = Counter(r.verdict for r in judgement.claims)
        _console().print(f"claims:  {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))} ({len(judgement.claims)} claims)")
        _console().print(f"         {claims.resolve()} (results block), {(sweep_dir / 'claims.json').resolve()}")


@app.command("eval")
def eval_(
    dirs: list[Path] = typer.Argument(..., help="Trial directories (with result.json) to re-evaluate."),
    metrics: str | None = typer.Option(
        None, "--metrics", help="Comma list of metric names (default: every metric that applies)."
    ),
) -> None:
    """(Re)compute the metrics of trial directories, e.g. after adding local CLIP weights."""
    from rich.table import Table

    from sdbench.trial import reevaluate

    names = tuple(m.strip() for m in metrics.split(",") if m.strip()) if metrics else ("all",)
    priors: dict = {}
    table = Table(title="re-evaluated", title_justify="left")
    table.add_column("trial")
    table.add_column("metrics")
    for d in dirs:
        result = reevaluate(d, names, priors)
        table.add_row(str(d), " ".join(f"{k}={v:.4g}" for k, v in result.metrics.items()))
    _console().print(table)


@app.command("export")
def export(
    source: Path = typer.Argument(..., help="A trial directory (with result.json) or a sweep directory (with trials/)."),
    fmt: str = typer.Option(..., "--format", help="gpteval3d, t3bench or frames."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default SOURCE/export/FORMAT)."),
    size: int = typer.Option(0, "--size", help="Image size (default 512 for gpteval3d and t3bench, the trial's for frames)."),
    views: int = typer.Option(0, "--views", help="frames only: orbit views (default 120)."),
    normals: str = typer.Option("world", "--normals", help="Normal-map frame: world (threestudio's, default) or camera."),
    prompts: Path | None = typer.Option(
        None, "--prompts", help="gpteval3d only: a prompts.json (or one prompt per line) whose order gives the prompt ids."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Render trials' saved representations in the view layout of an evaluator (GPTEval3D, T3Bench) or as frames."""
    from sdbench.export import export as export_views

    summary = export_views(source, fmt, out, size, views, normals, prompts, device, progress=not quiet)
    console = _console()
    for entry in summary.trials:
        console.print(f"{entry['id']}: {entry['files']} files in {entry['folder']}")
    for note in summary.skipped:
        console.print(f"skipped {note}")
    console.print(f"{summary.format} export: {summary.out.resolve()}")


def _print_result(result, out: Path) -> None:
    """A finished trial's metrics and cost (``result``: a :class:`sdbench.results.TrialResult`)."""
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    table = Table(
        title=escape(f"{result.prompt!r} · {result.loss} · {result.representation} · seed {result.seed}"),
        title_justify="left",
    )
    table.add_column("metric / cost")
    table.add_column("value", justify="right")
    for k, v in result.metrics.items():
        table.add_row(k, f"{v:.4g}")
    for k in ("seconds", "steps", "nfe", "seconds_per_step", "peak_memory_mb", "nonfinite_grad_steps"):
        if getattr(result.cost, k) is not None:
            table.add_row(f"cost.{k}", f"{getattr(result.cost, k):.4g}")
    console.print(table)
    for warning in result.warnings:
        console.print(f"warning: {escape(warning)}")
    console.print(f"trial directory: {out.resolve()}")
    console.print(f"views:           {(out / 'views.png').resolve()}")


# --------------------------------------------------------------------- main
def _click_exceptions(name: str) -> tuple[type, ...]:
    """The exception class ``name`` of click and of the click copy typer vendors (typer ≥ 0.2x)."""
    import importlib

    found = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: maps errors to the contract's exit statuses."""
    usage_errors, aborts = _click_exceptions("UsageError"), _click_exceptions("Abort")
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        rv = typer.main.get_command(app).main(args=args, prog_name="sdbench", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except UserError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except usage_errors as e:
        if debug:
            raise
        print(f"error: {e.format_message().splitlines()[0]}", file=sys.stderr)
        return 2
    except TrialFailed as e:
        if debug:
            raise
        print(f"error: trial failed: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, *aborts):
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line, not a traceback
        if debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"error: internal error: {type(e).__name__}: {first} (run with --debug for the traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
