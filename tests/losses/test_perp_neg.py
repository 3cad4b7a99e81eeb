"""Perp-Neg through the losses: a hand-computed gradient, its NFE, and ``--set loss.perp_neg=true`` trials."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sdbench import trial as T
from sdbench.budget import Budget
from sdbench.cameras import Cameras
from sdbench.errors import UserError
from sdbench.losses.ism import ISM
from sdbench.losses.sds import SDS
from sdbench.losses.sds_bridge import SDSBridge
from sdbench.losses.vdm import VDM
from sdbench.priors.base import TextConditioning
from sdbench.testing import StubPrior
from tests.losses.helpers import check

PROMPT = "a red cube"


class PatternPrior(StubPrior):
    """The stub prior with an embedding term that varies over pixels, ε = a x_t + b ⟨P, e⟩ + c t/1000
    (P a fixed random [8, C, h, w] basis): the stub's own b·mean(e) is a constant image per sample,
    so every Δ would be parallel and every Δ^⊥ zero."""

    @classmethod
    def formula(cls, x_t, t, embeddings):
        basis = torch.randn(8, *x_t.shape[1:], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        term = torch.einsum("bk,kchw->bchw", embeddings.flatten(1).to(torch.float64), basis)
        return (cls.a * x_t + cls.b * 0.1 * term.to(x_t.dtype) + cls.c * (t.float() / 1000).view(-1, 1, 1, 1)).to(x_t.dtype)


def f(a, b, c, r):
    return a * math.exp(-b * r) + c


def expected_plan(phi: float, elevation: float):
    """(E_pos as (view, view, r), [(negative view, weight)]) from losses-2.md §7, written out."""
    if elevation > 60:
        return ("overhead", "overhead", 1.0), [(None, 0.0), (None, 0.0)]
    if abs(phi) < 90:
        r = 1 - abs(phi) / 90
        return ("front", "side", r), [("front", -f(4, 0.5, -2.426, r)), ("side", -f(4, 0.5, -2.426, 1 - r))]
    r = 2 - abs(phi) / 90
    return ("side", "back", r), [("side", -f(1, 0.5, -0.606, r)), ("front", -f(1, 0.5, 0.967, r))]


def test_perp_neg_sds_gradient_matches_a_hand_computation():
    prior = PatternPrior(StubPrior.Config(resolution=8))
    azimuth, elevation = [0.0, 45.0, 120.0, 180.0, 30.0], [20.0, 20.0, 20.0, 20.0, 70.0]  # the last one overhead
    B, s = len(azimuth), 7.5
    cams = Cameras(torch.tensor(azimuth), torch.tensor(elevation), torch.full((B,), 3.0), torch.full((B,), 40.0))
    g = torch.Generator().manual_seed(0)
    images = torch.rand(B, 3, 8, 8, generator=g).requires_grad_(True)
    noise, t = torch.randn(B, 3, 8, 8, generator=g), torch.tensor([100, 300, 500, 700, 900])
    text = TextConditioning(prior, PROMPT)
    out = SDS(SDS.Config(cfg_scale=s, perp_neg=True), prior)(images, text, cams, 0, t=t, noise=noise)
    out.loss.backward()
    assert prior.nfe.forward == 4 * B  # pos, uncond, two negatives per view, one call

    # independent computation in float64: x_t, the four predictions, Δ^⊥ by explicit dot products
    a = prior.alphas_cumprod[t].double().view(-1, 1, 1, 1)
    x_t = a.sqrt() * (images.detach().double() * 2 - 1) + (1 - a).sqrt() * noise.double()
    E = {v: StubPrior.embedding(f"{PROMPT}, {v} view").double() for v in ("front", "side", "back", "overhead")}
    E[None] = StubPrior.embedding("").double()
    grads = []
    for i in range(B):
        (va, vb, r), negatives = expected_plan(azimuth[i], elevation[i])
        xi, ti = x_t[i : i + 1], t[i : i + 1]
        eps = lambda e, xi=xi, ti=ti: PatternPrior.formula(xi, ti, e[None])[0]  # noqa: E731
        e_u = eps(E[None])
        d_pos = eps(r * E[va] + (1 - r) * E[vb]) - e_u
        direction = d_pos.clone()
        for view, w in negatives:
            d_i = eps(E[view]) - e_u
            perp = d_i - (d_i * d_pos).sum() / max((d_pos * d_pos).sum().item(), 1e-6) * d_pos
            if view is not None and (view, r) != (va, 1.0):  # (at φ = 0 the front negative is Δ_pos itself)
                assert perp.norm() > 0.05 * d_i.norm()  # the test exercises the weights
            direction = direction + w * perp
        grads.append((1 - a[i]) * (e_u + s * direction - noise[i].double()))
    check(images, torch.stack(grads).float())

    plain = SDS(SDS.Config(cfg_scale=s), prior)(images.detach().requires_grad_(True), text, cams, 0, t=t, noise=noise)
    assert abs(plain.logs["grad_norm"] - out.logs["grad_norm"]) > 1e-3  # Perp-Neg changed the gradient


@pytest.mark.parametrize(
    "make",
    [
        lambda p, on: SDS(SDS.Config(perp_neg=on), p),
        lambda p, on: VDM(VDM.Config(perp_neg=on, cuda_graph=False), p),
        lambda p, on: ISM(ISM.Config(perp_neg=on), p),
        lambda p, on: SDSBridge(SDSBridge.Config(perp_neg=on), p),
    ],
    ids=["sds", "vdm", "ism", "sds_bridge"],
)
def test_perp_neg_costs_two_more_evaluations_per_view(make):
    B, nfe = 3, {}
    for on in (False, True):
        prior = StubPrior(StubPrior.Config(resolution=8))
        images = torch.rand(B, 3, 8, 8, requires_grad=True)
        t = torch.full((B,), 500)  # fixed: ISM's inversion cost depends on t
        make(prior, on)(images, TextConditioning(prior, PROMPT), Cameras.orbit(B), 0, t=t).loss.backward()
        nfe[on] = prior.nfe.forward
    assert nfe[True] - nfe[False] == 2 * B


def test_perp_neg_needs_view_dependent_prompts(stub_prior):
    text = TextConditioning(stub_prior, PROMPT, view_dependent=False)
    with pytest.raises(UserError, match="view-dependent"):
        SDS(SDS.Config(perp_neg=True), stub_prior)(torch.rand(2, 3, 8, 8), text, Cameras.orbit(2), 0)


@pytest.mark.parametrize("loss", ["sds", "vdm"])
def test_set_perp_neg_runs_a_short_trial(tiny_pixel_checkpoint, tmp_path, loss):
    overrides = ("loss.perp_neg=true", "loss.perp_neg_options.f_sb.c=-0.5")
    cfg = T.TrialConfig(
        prompt=PROMPT,
        loss=loss,
        representation="image",
        prior=str(tiny_pixel_checkpoint),
        budget=Budget("steps", 3),
        batch_size=2,
        eval_views=2,
    )
    spec = T.resolve(cfg, overrides)
    assert spec.loss.perp_neg and spec.loss.perp_neg_options.f_sb.c == -0.5
    T.run_trial(spec, tmp_path / loss, progress=False)
    result = json.loads((tmp_path / loss / "result.json").read_text())
    assert result["status"] == "completed" and result["cost"]["nfe"] == 3 * 2 * 4
    assert result["config"]["loss"]["perp_neg"] is True
