"""The diffusers adapter against tiny random checkpoints built from configs (no downloads)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from sdbench.errors import UserError
from sdbench.priors.diffusers_prior import DiffusersPrior


def load(path, **kw):
    return DiffusersPrior(DiffusersPrior.Config(path=str(path), **kw))


def test_pixel_checkpoint_loads_offline_and_maps_rgb(tiny_pixel_checkpoint):
    prior = load(tiny_pixel_checkpoint)
    assert prior.vae is None and prior.resolution == 16 and prior.channels == 3
    assert prior.device.type == "cpu" and prior.unet.dtype == torch.float32
    img = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(prior.encode_images(img), img * 2 - 1)
    torch.testing.assert_close(prior.decode(prior.encode_images(img)), img)
    # renders of another size are resized bilinearly to the prior's resolution
    assert prior.encode_images(torch.rand(1, 3, 40, 40)).shape == (1, 3, 16, 16)


def test_alphas_cumprod_is_the_schedule(tiny_pixel_checkpoint):
    from sdbench.testing import sd_alphas_cumprod

    prior = load(tiny_pixel_checkpoint)
    torch.testing.assert_close(prior.alphas_cumprod, sd_alphas_cumprod(), atol=1e-6, rtol=1e-5)
    assert prior.num_train_timesteps == 1000


def test_latent_checkpoint_encodes_through_the_vae_with_gradient(tiny_latent_checkpoint):
    prior = load(tiny_latent_checkpoint)
    assert prior.resolution == 16 and prior.latent_scale == 2 and prior.channels == 4
    img = torch.rand(2, 3, 16, 16, requires_grad=True)
    z = prior.encode_images(img)
    assert z.shape == (2, 4, 8, 8)
    z.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0  # the VAE encoder is in the graph
    assert all(not p.requires_grad for p in prior.vae.parameters())  # ... with frozen weights
    assert prior.decode(z.detach()).shape == (2, 3, 16, 16)


def test_predict_noise_batches_conditionings_into_one_counted_call(tiny_pixel_checkpoint):
    prior = load(tiny_pixel_checkpoint)
    calls = []
    prior.unet.register_forward_pre_hook(lambda m, args, kwargs: calls.append(args[0].shape[0]), with_kwargs=True)
    x = torch.randn(3, 3, 16, 16)
    t = torch.tensor([10, 500, 900])
    cond, uncond = prior.encode_text(["a red cube"] * 3), prior.encode_text([""] * 3)
    eps_cfg, eps_c, eps_u = prior.predict_cfg(x, t, cond, uncond, 7.5)
    assert calls == [6] and prior.nfe.forward == 6 and prior.nfe.with_grad == 0
    torch.testing.assert_close(eps_cfg, eps_u + 7.5 * (eps_c - eps_u))
    with torch.no_grad():  # the batched call gives the same numbers as separate calls
        ref = prior.unet(x, t, encoder_hidden_states=cond).sample
    torch.testing.assert_close(eps_c, ref, atol=1e-5, rtol=1e-4)


def test_text_embeddings_are_cached_and_distinguish_prompts(tiny_pixel_checkpoint):
    prior = load(tiny_pixel_checkpoint)
    e = prior.encode_text(["a red cube", "", "a red cube"])
    assert e.shape[0] == 3 and e.dim() == 3
    torch.testing.assert_close(e[0], e[2])
    assert not torch.allclose(e[0], e[1])
    assert set(prior._text_cache) == {"a red cube", ""}


def test_v_prediction_is_converted_to_epsilon(tiny_pixel_checkpoint, tmp_path):
    path = tmp_path / "v"
    shutil.copytree(tiny_pixel_checkpoint, path)
    sched = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    sched["prediction_type"] = "v_prediction"
    (path / "scheduler" / "scheduler_config.json").write_text(json.dumps(sched))
    prior = load(path)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([100, 700])
    e = prior.encode_text(["a red cube"] * 2)
    (eps,) = prior.predict_noise(x, t, [e])
    with torch.no_grad():
        v = prior.unet(x, t, encoder_hidden_states=e).sample
    a = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(eps, a.sqrt() * v + (1 - a).sqrt() * x, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("scheduler", ["dpmsolver++", "ddim"])
def test_sampling_with_a_diffusers_scheduler(tiny_pixel_checkpoint, scheduler):
    prior = load(tiny_pixel_checkpoint)
    g = torch.Generator().manual_seed(0)
    imgs = prior.sample(
        ["a red cube", "a blue cone", "a green torus"], num_steps=4, scheduler=scheduler, generator=g, batch_size=2
    )
    assert imgs.shape == (3, 3, 16, 16) and imgs.min() >= 0 and imgs.max() <= 1
    assert prior.nfe.forward == 3 * 4 * 2  # CFG pair per image per step
    again = prior.sample(
        ["a red cube", "a blue cone"], num_steps=4, scheduler=scheduler, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(again, imgs[:2], atol=0, rtol=0)  # same seed, same batches: identical


def test_unknown_scheduler_is_a_user_error(tiny_pixel_checkpoint):
    with pytest.raises(UserError, match="unknown scheduler"):
        load(tiny_pixel_checkpoint).make_scheduler("warp-drive")


def test_missing_folder_and_components_are_user_errors(tmp_path, tiny_pixel_checkpoint):
    with pytest.raises(UserError, match="does not exist"):
        load(tmp_path / "nope")
    with pytest.raises(UserError, match="model_index.json is missing"):
        load(tmp_path)
    partial = tmp_path / "partial"
    shutil.copytree(tiny_pixel_checkpoint, partial)
    shutil.rmtree(partial / "unet")
    with pytest.raises(UserError, match="lacks unet"):
        load(partial)


def test_sd21_without_weights_names_where_to_put_them(monkeypatch, tmp_path):
    from sdbench.priors.sd21 import ENV_VAR, SD21Prior

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(UserError, match=ENV_VAR):
        SD21Prior()


def test_sd21_loads_a_local_folder_from_the_env_var(monkeypatch, tiny_latent_checkpoint):
    from sdbench.priors.sd21 import ENV_VAR, SD21Prior

    monkeypatch.setenv(ENV_VAR, str(tiny_latent_checkpoint))
    prior = SD21Prior()
    assert prior.vae is not None and prior.root == tiny_latent_checkpoint


def test_sd21_refuses_a_full_size_unet_on_cpu(monkeypatch, tiny_latent_checkpoint, tmp_path):
    from sdbench.priors.sd21 import ENV_VAR, SD21Prior

    big = tmp_path / "big"
    shutil.copytree(tiny_latent_checkpoint, big)
    cfg = json.loads((big / "unet" / "config.json").read_text())
    cfg["block_out_channels"] = [320, 640, 1280, 1280]  # SD 2.1's widths; refused before any weight loads
    (big / "unet" / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setenv(ENV_VAR, str(big))
    with pytest.raises(UserError, match="minute per UNet call"):
        SD21Prior(SD21Prior.Config(device="cpu"))
