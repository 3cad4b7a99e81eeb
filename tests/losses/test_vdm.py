"""VDM + DCA (DreamMapping): gradient at both DCA branches and for every ablation; L_op decreases."""

from __future__ import annotations

import pytest
import torch

from sdbench import registry
from sdbench.losses.vdm import VDM, dca_lambda
from tests.losses.helpers import check, eps, forward_process, setup

ABLATIONS = {
    "vdm": dict(dca=True, dca_cutoff=300, operator="ulite"),
    "vdm_nodca": dict(dca=False),
    "vdm_cut100": dict(dca_cutoff=100),
    "vdm_cut500": dict(dca_cutoff=500),
    "vdm_linear": dict(operator="linear"),
    "vdm_noise": dict(operator="ulite_noise"),
}


def run(name: str, t_val: int):
    prior, images, noise, cams, text = setup(B=2, size=16)
    cls = registry.LOSSES.get(name)
    loss = cls(cls.Config(), prior)
    with torch.no_grad():  # make the operator non-trivial (the linear one starts as identity)
        for p in loss.operator.parameters():
            p.add_(0.05 * torch.randn_like(p))
    t = torch.full((2,), t_val)
    _, x_t, a = forward_process(prior, images, t, noise)
    e_y, e_u = eps(x_t, t, text.prompts_for(cams)), eps(x_t, t, "")
    eps_phi = e_u + 7.5 * (e_y - e_u)
    # ψ is updated first (Algorithm 1), so the reference uses the operator after one Adam step on
    # L_op = ‖M_ψ(ε_φ) − ε‖², taken here on a copy with the same optimiser settings
    import copy

    ref_op = copy.deepcopy(loss.operator)
    opt = torch.optim.Adam(ref_op.parameters(), lr=0.01)
    ref_op.train()
    (ref_op(eps_phi) - noise).pow(2).mean().backward()
    opt.step()
    with torch.no_grad():
        mapped = ref_op(eps_phi)
    out = loss(images, text, cams, 0, t=t, noise=noise)
    out.loss.backward()
    return loss, prior, images, a, eps_phi, mapped, out


@pytest.mark.parametrize("name", list(ABLATIONS))
@pytest.mark.parametrize("t_val", [250, 350])
def test_vdm_gradient_matches_eq_19(name, t_val):
    loss, prior, images, a, eps_phi, mapped, out = run(name, t_val)
    for k, v in ABLATIONS[name].items():
        assert getattr(loss.cfg, k) == v
    cutoff = loss.cfg.dca_cutoff if loss.cfg.dca else None
    lam = 1.0 if cutoff is None or t_val > cutoff else 1 - prior.alphas_cumprod[t_val].item()  # Eq. 18
    g = (1 - a) * (eps_phi - lam * mapped)  # Eq. 19 with w(t) = 1 − ᾱ_t
    check(images, g)
    assert out.logs["lambda_t"] == pytest.approx(lam)
    assert prior.nfe.forward == 2 * 2  # a CFG pair per view; M_ψ is not a prior evaluation


def test_dca_branch_values_on_the_sd_schedule():
    from sdbench.testing import sd_alphas_cumprod

    a = sd_alphas_cumprod()
    lam = dca_lambda(a, torch.tensor([299, 300, 301, 980]), 300).flatten()
    torch.testing.assert_close(lam, torch.tensor([1 - a[299].item(), 1 - a[300].item(), 1.0, 1.0]))
    assert abs(lam[1].item() - 0.4095) < 5e-4  # λ jumps from ≈ 0.41 to 1 at t = 300
    assert torch.equal(dca_lambda(a, torch.tensor([10, 900]), None).flatten(), torch.ones(2))


@pytest.mark.parametrize("operator", ["ulite", "linear", "ulite_noise"])
def test_operator_loss_decreases_on_a_fixed_batch(operator):
    prior, images, noise, cams, text = setup(B=2, size=16)
    loss = VDM(VDM.Config(operator=operator), prior)
    torch.manual_seed(0)
    eps_phi = torch.randn(2, 3, 16, 16)
    target = 0.7 * eps_phi + 0.1
    losses = [loss.operator_step(eps_phi, target) for _ in range(60)]
    assert losses[-1] < 0.5 * losses[0]


def test_operator_size_and_checkpoint_round_trip():
    from sdbench.losses.ulite import ULite

    assert sum(p.numel() for p in ULite(4, 4, levels=5).parameters()) == 879_252  # U-Lite at SD's 4×64×64
    assert sum(p.numel() for p in ULite(3, 1, levels=5).parameters()) == 878_417  # the paper's "878K"
    prior, images, noise, cams, text = setup(B=2, size=16)
    loss = VDM(VDM.Config(), prior)
    loss(images, text, cams, 0)
    state = loss.checkpoint_state()
    other = VDM(VDM.Config(), prior)
    other.load_checkpoint_state(state)
    for (n, p), (_, q) in zip(loss.operator.named_parameters(), other.operator.named_parameters()):
        assert torch.equal(p, q), n
    assert other._optimizer.state_dict()["state"].keys() == loss._optimizer.state_dict()["state"].keys()


@pytest.fixture
def deterministic_cudnn():
    """Deterministic cuDNN algorithms in full fp32: the depth-wise convolutions' weight gradients
    otherwise accumulate in a run-dependent order (and in TF32), and Adam's first steps, ≈ lr·sign(g),
    turn those rounding differences into lr-sized ones for near-zero gradients: two eager runs
    would then disagree as much as eager and graphed do (seen on the device: 1.4e-3 after 3 steps)."""
    flags = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = True, False, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = flags


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need CUDA")
def test_cuda_graph_replay_matches_eager_updates(deterministic_cudnn):
    """The graphed ψ update (VDM's default on CUDA) computes what the eager one does, step by step,
    through the warm-up calls, the capture, the replays, and a change of batch size (re-capture).
    Before each step the graphed copy is set (in place, as the graph reads it) to the eager one's
    parameters, buffers and Adam state, so each comparison is of one step, not of two trajectories."""
    from types import SimpleNamespace

    stand_in = SimpleNamespace(latent_shape=(4, 32, 32), device=torch.device("cuda"))
    torch.manual_seed(0)
    eager = VDM(VDM.Config(cuda_graph=False), stand_in)
    graphed = VDM(VDM.Config(cuda_graph=True), stand_in)
    errors = []
    for step in range(12):
        sync_(graphed, eager)
        B = 2 if step < 6 else 3  # warm-up 0–2, capture 3, replay 4–5; again 6–8, capture 9, replay 10–11
        e, n = torch.randn(B, 4, 32, 32, device="cuda"), torch.randn(B, 4, 32, 32, device="cuda")
        m_e, l_e = eager._update_and_map(e, n)
        m_g, l_g = graphed._update_and_map(e, n)
        assert torch.isfinite(m_g).all()
        errors.append((step, graphed._update_and_map.captured, rel_err(l_g, l_e), rel_err(m_g, m_e)))
    print(errors)
    assert [c for _, c, _, _ in errors] == [False] * 3 + [True] * 3 + [False] * 3 + [True] * 3
    assert all(el < 1e-4 and em < 1e-4 for _, _, el, em in errors), errors


def sync_(dst: VDM, src: VDM) -> None:
    with torch.no_grad():
        for p, q in zip(dst.operator.parameters(), src.operator.parameters()):
            p.copy_(q)
        for p, q in zip(dst.operator.buffers(), src.operator.buffers()):
            p.copy_(q)
        for p, q in zip(dst.operator.parameters(), src.operator.parameters()):
            for key, value in src._optimizer.state.get(q, {}).items():
                dst._optimizer.state[p][key].copy_(value)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def test_cuda_graph_option_is_inert_on_the_cpu():
    prior, images, noise, cams, text = setup(B=2, size=16)
    a, b = VDM(VDM.Config(cuda_graph=True), prior), VDM(VDM.Config(cuda_graph=False), prior)
    b.operator.load_state_dict(a.operator.state_dict())
    t = torch.full((2,), 400)
    ga = a(images, text, cams, 0, t=t, noise=noise).loss
    gb = b(images, text, cams, 0, t=t, noise=noise).loss
    assert a._update_and_map == a.update_and_map and torch.equal(ga, gb)
