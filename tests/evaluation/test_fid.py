"""FID through clean-fid with a custom feature extractor (no Inception download)."""

from __future__ import annotations

import pytest
import torch

from sdbench.evaluation import fid
from sdbench.io import save_image


def write(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        save_image(img, folder / f"{i:03d}.png")
    return folder


def features(batch):  # a fixed random projection of 8×8 thumbnails: cheap and deterministic
    x = torch.nn.functional.adaptive_avg_pool2d(batch.float() / 255, 8).flatten(1)
    return x @ torch.randn(x.shape[1], 16, generator=torch.Generator().manual_seed(0))


def test_fid_of_a_set_with_itself_is_zero_and_a_shifted_set_is_far(tmp_path):
    g = torch.Generator().manual_seed(0)
    base = torch.rand(40, 3, 32, 32, generator=g) * 0.5
    a = write(tmp_path / "a", base)
    b = write(tmp_path / "b", base)
    c = write(tmp_path / "c", (base + 0.4).clamp(0, 1))
    same = fid.fid(a, b, features)
    shifted = fid.fid(a, c, features)
    assert abs(same) < 1e-3
    assert shifted > 1.0


def test_missing_inception_weights_are_a_user_error(monkeypatch, tmp_path):
    from sdbench.errors import UserError

    monkeypatch.setenv(fid.INCEPTION_ENV, str(tmp_path))
    with pytest.raises(UserError, match=fid.INCEPTION_ENV):
        fid.feature_extractor("inception")


def test_reference_images_are_sampled_once_and_cached(tmp_path, stub_prior):
    folder = fid.reference_images(stub_prior, "stub", "a red cube", 3, seed=0, cache=tmp_path)
    assert len(list(folder.glob("*.png"))) == 3
    stamp = (folder / "00000.png").stat().st_mtime_ns
    again = fid.reference_images(stub_prior, "stub", "a red cube", 3, seed=0, cache=tmp_path)
    assert again == folder and (folder / "00000.png").stat().st_mtime_ns == stamp
