"""Atomic file writes (temp file + rename) and image helpers.

A crash never leaves a half-written results file: every writer here writes to a temporary file
in the same folder, flushes it to disk and renames it over the target.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor

_FILE_IDS: dict[tuple[str, int, int], str] = {}
FULL_HASH_BYTES = 256 << 20
"""Files up to this size are hashed whole by :func:`file_id`; larger ones by their size, head and tail."""


def file_id(path: Path) -> str:
    """A short identity of a weights file: the first 16 hex digits of the SHA-256 of its bytes; for a
    file over :data:`FULL_HASH_BYTES` (a Stable Diffusion UNet), of its size and first and last 16 MiB,
    prefixed ``partial-``. Cached per (path, size, mtime) within the process."""
    import hashlib

    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_IDS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            if st.st_size <= FULL_HASH_BYTES:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
                prefix = ""
            else:
                h.update(str(st.st_size).encode())
                h.update(f.read(16 << 20))
                f.seek(-(16 << 20), os.SEEK_END)
                h.update(f.read())
                prefix = "partial-"
        _FILE_IDS[key] = prefix + h.hexdigest()[:16]
    return _FILE_IDS[key]


def slug(text: str, max_len: int = 40) -> str:
    """A file-name-safe form of ``text`` (trial ids, run folders, cache folders): lower-case ASCII letters
    and digits, every other run of characters one ``-``, cut at ``max_len``; ``prompt`` when nothing is left."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_len] or "prompt"


def _umask() -> int:
    """The process's umask, read without changing it (Linux ``/proc``; 0o022 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    If ``write`` raises, ``path`` keeps its previous content and the temporary file is removed. The
    file gets the permissions an ordinary ``open`` would give it (not the temporary file's 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, data: Any) -> Path:
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def save_tensors(tensors: dict[str, Tensor], path: Path) -> Path:
    """Write named tensors as a safetensors file (CPU, contiguous), atomically."""
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    return atomic_write(path, lambda f: f.write(data))


def load_tensors(path: Path) -> dict[str, Tensor]:
    """Read a file written by :func:`save_tensors`."""
    from safetensors.torch import load_file

    return load_file(str(path))


def to_pil(image: Tensor, min_size: int = 0):
    """``[3, H, W]`` in [0, 1] → PIL image, upscaled (nearest) to at least ``min_size`` pixels high."""
    from PIL import Image as PILImage

    arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    pil = PILImage.fromarray(arr)
    if min_size and pil.height < min_size:
        k = -(-min_size // pil.height)
        pil = pil.resize((pil.width * k, pil.height * k), PILImage.NEAREST)
    return pil


def save_image(image: Tensor, path: Path, min_size: int = 0) -> Path:
    pil = to_pil(image, min_size)
    return atomic_write(path, lambda f: pil.save(f, format="PNG"))


def grid(images: Tensor, nrow: int, padding: int = 2, pad_value: float = 1.0) -> Tensor:
    """``[N, 3, H, W]`` → one ``[3, H', W']`` grid image."""
    from torchvision.utils import make_grid

    return make_grid(images.detach().float().cpu(), nrow=nrow, padding=padding, pad_value=pad_value)


def save_grid(images: Tensor, path: Path, nrow: int, min_size: int = 128) -> Path:
    """Save ``[N, 3, H, W]`` as a grid; small views are upscaled (nearest) to ``min_size`` pixels."""
    if images.shape[-2] < min_size:
        k = -(-min_size // images.shape[-2])
        images = torch.nn.functional.interpolate(images.float(), scale_factor=k, mode="nearest")
    return save_image(grid(images, nrow), path)


def save_gif(frames: Sequence[Tensor] | Tensor, path: Path, fps: int = 12, min_size: int = 128) -> Path:
    """Save frames ``[N, 3, H, W]`` in [0, 1] as a looping GIF."""
    pils = [to_pil(f, min_size) for f in frames]

    def write(f: BinaryIO) -> None:
        pils[0].save(f, format="GIF", save_all=True, append_images=pils[1:], duration=int(1000 / fps), loop=0)

    return atomic_write(path, write)
