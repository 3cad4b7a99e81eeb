from __future__ import annotations

import torch

from sdbench.cameras import Cameras
from sdbench.representations.image import Image


def test_renders_the_same_grey_image_from_every_camera():
    rep = Image(Image.Config(init=0.25), resolution=16)
    out = rep.render(Cameras.orbit(3), 16, 16)
    assert out.rgb.shape == (3, 3, 16, 16) and out.alpha.shape == (3, 1, 16, 16)
    torch.testing.assert_close(out.rgb, torch.full_like(out.rgb, 0.25))
    assert rep.render(Cameras.orbit(1), 8, 8).rgb.shape == (1, 3, 8, 8)


def test_gradient_reaches_the_logits_and_groups_carry_the_lr():
    rep = Image(Image.Config(lr=0.3), resolution=8)
    rep.render(Cameras.orbit(2), 8, 8).rgb.sum().backward()
    assert rep.logits.grad is not None and rep.logits.grad.abs().sum() > 0
    (group,) = rep.parameter_groups()
    assert group["lr"] == 0.3 and group["params"][0] is rep.logits


def test_export_writes_the_image(tmp_path):
    from PIL import Image as PILImage

    rep = Image(Image.Config(size=12), resolution=8)
    (path,) = rep.export(tmp_path)
    assert PILImage.open(path).size == (12, 12)
