"""The optimisation loop: render, loss, step, until the budget is spent.

Non-finite gradients are never silent: the loss zeroes and counts the NaN/inf entries of its gradient
(:meth:`sdbench.losses.base.Loss.prepare_grad`), the loop zeroes and counts any that still reach the
representation's parameters, and a step with either counts in ``nonfinite_grad_steps`` (history and
result). One bad step does no harm; a trial above ``trial.max_nonfinite_grad_share`` of them fails.

Each part of a step is a :mod:`~sdbench.trial.timing` section (free unless a profile turns it on).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from sdbench.cameras import Cameras
from sdbench.errors import TrialFailed
from sdbench.hardware import legacy_path
from sdbench.priors.base import TextConditioning
from sdbench.trial.checkpoint import save_checkpoint
from sdbench.trial.state import TrialState
from sdbench.trial.timing import TIMER


def _progress(enabled: bool):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[spent]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[logs]}"),
        disable=not enabled,
        transient=False,
    )


def optimise(
    state: TrialState,
    progress: bool = True,
    on_step: Callable[[TrialState], None] | None = None,
    checkpoint_path: Path | None = None,
) -> list[dict]:
    """Run the optimisation loop until the budget is spent; returns the logged history.

    With ``checkpoint_path`` and ``trial.checkpoint_every``, a resumable checkpoint is written
    every that many steps."""
    t = state.spec.trial
    section = TIMER.section
    text = TextConditioning(state.prior, t.prompt, t.view_dependent, t.cameras)
    res = state.representation.resolution
    history = state.history
    window: dict[str, list[float]] = {}
    start = time.perf_counter() - state.seconds
    with _progress(progress) as bar:
        task = bar.add_task(f"{t.loss} · {t.representation}", total=1.0, spent="", logs="")
        while not t.budget.exhausted(state.step, state.seconds, state.nfe):
            with section("cameras"):
                cams = Cameras.sample(t.batch_size, t.cameras, generator=state.generators.cameras).to(state.prior.device)
            with section("render"):
                out = state.representation.render(cams, res, res)
            state.loss.nonfinite_grad_entries = 0
            with section("loss"):
                result = state.loss(out.rgb, text, cams, state.step)
            with section("checks"):
                if not torch.isfinite(result.loss) or not torch.isfinite(out.rgb).all():
                    raise TrialFailed(f"loss became NaN/inf at step {state.step}")
            with section("optimiser"):
                for opt in state.optimizers.values():
                    opt.zero_grad(set_to_none=True)
            with section("backward"):
                state.representation.pre_backward(state.step, out)
                result.loss.backward()
            with section("checks"):
                bad = state.loss.nonfinite_grad_entries + zero_nonfinite_grads(state.representation.parameters())
                state.nonfinite_grad_steps += int(bad > 0)
            with section("optimiser"):
                for opt in state.optimizers.values():
                    opt.step()
                state.representation.post_step(state.step, state.optimizers, out)
            state.step += 1
            state.seconds = time.perf_counter() - start
            with section("logging"):
                for k, v in result.logs.items():
                    window.setdefault(k, []).append(float(v))
                if state.step % t.log_every == 0 or t.budget.exhausted(state.step, state.seconds, state.nfe):
                    state.logs = {k: sum(v) / len(v) for k, v in window.items()}
                    window = {}
                    if any(not math.isfinite(v) for v in state.logs.values()):
                        raise TrialFailed(f"a logged value became NaN/inf at step {state.step}: {state.logs}")
                    history.append(
                        {
                            "step": state.step,
                            "seconds": round(state.seconds, 4),
                            "nfe": state.nfe,
                            "nonfinite_grad_steps": state.nonfinite_grad_steps,
                            **state.logs,
                        }
                    )
                    shown = " ".join(f"{k}={v:.3g}" for k, v in list(state.logs.items())[:3])
                    bar.update(
                        task,
                        completed=t.budget.fraction(state.step, state.seconds, state.nfe),
                        spent=f"step {state.step} · nfe {state.nfe}",
                        logs=shown,
                    )
            if checkpoint_path is not None and t.checkpoint_every and state.step % t.checkpoint_every == 0:
                with section("checkpoint"):
                    save_checkpoint(state, checkpoint_path)
            if on_step is not None:
                on_step(state)
        bar.update(task, completed=1.0)
    check_nonfinite_share(state)
    return history


def zero_nonfinite_grads(parameters: Iterable[torch.Tensor]) -> int:
    """Set the NaN/inf entries of each parameter's ``.grad`` to 0; returns how many there were.

    Fast path: one sum per gradient and one sync; a finite total proves every entry finite (a NaN/inf
    entry makes its sum NaN/inf), and a non-finite total (also an overflow of finite values) falls back
    to counting entry by entry, so the count is exact either way."""
    parameters = list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0
    if not legacy_path() and bool(torch.isfinite(torch.stack([g.sum(dtype=torch.float32) for g in grads]).sum())):
        return 0
    count = 0
    for p in parameters:
        if p.grad is not None:
            bad = int((~torch.isfinite(p.grad)).sum())
            if bad:
                p.grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
                count += bad
    return count


def check_nonfinite_share(state: TrialState) -> None:
    """``TrialFailed`` when more than ``trial.max_nonfinite_grad_share`` of the steps had non-finite gradients."""
    limit = state.spec.trial.max_nonfinite_grad_share
    n, steps = state.nonfinite_grad_steps, max(state.step, 1)
    if n / steps > limit:
        raise TrialFailed(
            f"non-finite gradients (zeroed) in {n} of {state.step} steps, more than trial.max_nonfinite_grad_share={limit:g}"
        )
