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
from sdbench.losses.asd import ASD
from sdbench.losses.cds import CDS
from sdbench.losses.ism import ISM
from sdbench.losses.lods import LODS
from sdbench.losses.sdi import SDI
from sdbench.losses.sds import SDS
from sdbench.losses.sds_bridge import SDSBridge
from sdbench.losses.vdm import VDM
from sdbench.priors.base import TextConditioning
from sdbench.testing import StubPrior
from tests.losses.helpers import check
from tests.losses.test_sdi import reference as sdi_reference

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


def f32(a, b, c, r):
    """f in float32 (``r`` a float32 tensor), the precision of the camera side."""
    return a * torch.exp(-b * r) + c


def expected_plan(phi, elevation: float, f=f):
    """(E_pos as (view, view, r), [(negative view, weight)]) from losses-2.md §7, written out (``phi`` a
    float, or a float32 tensor with ``f=f32`` to reproduce float32 rounding)."""
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


def perp_neg_eps(x, t, azimuth, elevation, scale, weight_scale=1.0):
    """Perp-Neg's guided prediction of the pattern prior per view, written out from losses-2.md §7
    (``t`` an int or ``[B]``; the embeddings interpolated in float32 as the prompt side stores them,
    then everything in x's precision)."""
    B = x.shape[0]
    t = torch.full((B,), t) if isinstance(t, int) else t
    E = {v: StubPrior.embedding(f"{PROMPT}, {v} view") for v in ("front", "side", "back", "overhead")}
    E[None] = StubPrior.embedding("")
    out = []
    for i in range(B):
        (va, vb, r), negatives = expected_plan(torch.tensor(azimuth[i]), elevation[i], f=f32)
        eps = lambda e, i=i: PatternPrior.formula(x[i : i + 1], t[i : i + 1], e[None])[0]  # noqa: E731
        r32 = torch.as_tensor(r, dtype=torch.float32)
        e_u = eps(E[None])
        d_pos = eps(r32 * E[va] + (1 - r32) * E[vb]) - e_u
        direction = d_pos.clone()
        for view, w in negatives:
            d_i = eps(E[view]) - e_u
            direction = direction + weight_scale * torch.as_tensor(w).to(x.dtype) * (
                d_i - (d_i * d_pos).sum() / max((d_pos * d_pos).sum().item(), 1e-6) * d_pos
            )
        out.append(e_u + scale * direction)
    return torch.stack(out)


def pattern_batch(azimuth, elevation, double: bool = False):
    """The pattern prior, renders, cameras, noise and text for views at ``azimuth``/``elevation`` (float64 renders,
    noise and ᾱ with ``double``: SDI chains up to 12 predictions amplified by σ_t/α_t)."""
    prior = PatternPrior(StubPrior.Config(resolution=8))
    B = len(azimuth)
    cams = Cameras(torch.tensor(azimuth), torch.tensor(elevation), torch.full((B,), 3.0), torch.full((B,), 40.0))
    g = torch.Generator().manual_seed(0)
    images, noise = torch.rand(B, 3, 8, 8, generator=g), torch.randn(B, 3, 8, 8, generator=g)
    if double:
        prior.alphas_cumprod = prior.alphas_cumprod.double()
        images, noise = images.double(), noise.double()
    return prior, images.requires_grad_(True), cams, noise, TextConditioning(prior, PROMPT)


AZIMUTH, ELEVATION = [30.0, 120.0, 180.0, 45.0], [20.0, 20.0, 20.0, 70.0]  # the last one overhead


@pytest.mark.parametrize("t_val,hops", [(980, 11), (500, 6)])
def test_perp_neg_sdi_guides_inversion_and_final_prediction(t_val, hops):
    prior, images, cams, _, text = pattern_batch(AZIMUTH, ELEVATION, double=True)
    B = images.shape[0]
    loss = SDI(SDI.Config(perp_neg=True), prior)
    loss.generator = torch.Generator().manual_seed(7)
    out = loss(images, text, cams, 0, t=torch.full((B,), t_val))
    out.loss.backward()
    assert prior.nfe.forward == 4 * (hops + 1) * B  # 4 rows per prediction: inversion hops and the final one

    def guided(x, tau, _prompts, s):
        return perp_neg_eps(x, tau, AZIMUTH, ELEVATION, s)

    g, n_hops, _ = sdi_reference(prior, images, None, t_val, seed=7, guided=guided)
    assert n_hops == hops
    check(images, g)
    plain = SDI(SDI.Config(), prior)
    plain.generator = torch.Generator().manual_seed(7)
    off = plain(images.detach().requires_grad_(True), text, cams, 0, t=torch.full((B,), t_val))
    assert abs(off.logs["grad_norm"] - out.logs["grad_norm"]) > 1e-3  # Perp-Neg changed the gradient


@pytest.mark.parametrize("scale", [None, 1.0])
def test_perp_neg_asd_guides_the_first_term_with_scaled_weights(scale):
    prior, images, cams, noise, text = pattern_batch(AZIMUTH, ELEVATION, double=True)
    B = images.shape[0]
    t = torch.tensor([500, 700, 990, 600])
    cfg = ASD.Config(perp_neg=True, plus_random=False, **({} if scale is None else {"perp_neg_scale": scale}))
    out = ASD(cfg, prior)(images, text, cams, 0, t=t, noise=noise)
    out.loss.backward()
    assert prior.nfe.forward == 5 * B  # pos, uncond, two negatives at t; pos at t⁺; one call

    k = 0.5 if scale is None else scale  # default: ScaleDreamer's shipped guidance_perp_neg −0.5
    t_plus = torch.tensor([500, 720, 999, 610])  # u = 1: t + min(0.1 (t − 500), 999 − t)
    a, a_plus = (prior.alphas_cumprod[s].view(-1, 1, 1, 1) for s in (t, t_plus))
    z = images.detach() * 2 - 1
    x_t, x_plus = a.sqrt() * z + (1 - a).sqrt() * noise, a_plus.sqrt() * z + (1 - a_plus).sqrt() * noise
    positive = []  # the t⁺ term: the interpolated positive embedding, no CFG
    for i in range(B):
        (va, vb, r), _ = expected_plan(torch.tensor(AZIMUTH[i]), ELEVATION[i], f=f32)
        r32 = torch.as_tensor(r, dtype=torch.float32)
        positive.append(
            r32 * StubPrior.embedding(f"{PROMPT}, {va} view") + (1 - r32) * StubPrior.embedding(f"{PROMPT}, {vb} view")
        )
    eps_plus = PatternPrior.formula(x_plus, t_plus, torch.stack(positive))
    g = (1 - a) * (perp_neg_eps(x_t, t, AZIMUTH, ELEVATION, 7.5, k) - eps_plus)
    check(images, g)
    assert out.logs["t_plus"] == pytest.approx(t_plus.double().mean().item())


@pytest.mark.parametrize("cls", [CDS, LODS], ids=["cds", "lods"])
def test_perp_neg_is_rejected_where_no_reference_defines_it(cls, stub_prior):
    with pytest.raises(UserError, match="Perp-Neg"):
        cls(cls.Config(perp_neg=True), stub_prior)


@pytest.mark.parametrize(
    "make",
    [
        lambda p, on: SDS(SDS.Config(perp_neg=on), p),
        lambda p, on: VDM(VDM.Config(perp_neg=on, cuda_graph=False), p),
        lambda p, on: ISM(ISM.Config(perp_neg=on), p),
        lambda p, on: SDSBridge(SDSBridge.Config(perp_neg=on), p),
        lambda p, on: ASD(ASD.Config(perp_neg=on), p),
    ],
    ids=["sds", "vdm", "ism", "sds_bridge", "asd"],
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
