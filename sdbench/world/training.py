"""What both toy training scripts share: device choice, warm start, checkpoint/resume and the log.

* :func:`warm_start` copies every tensor of an earlier model whose name and shape recur in the
  new one, and the rows of a token-embedding table the new vocabulary extends (v1 → v2 keeps v1's
  token ids, so the v1 words' rows are copied and the new words start from the mean v1 row).
* :func:`warm_start_unet` grows a diffusers UNet (more layers per block, cross-attention in more
  blocks) from a smaller one *function-preservingly*: the old layers are copied where they belong,
  and every new residual branch starts as the identity (zero output projection of new attention
  blocks and of new ResNet blocks' ``conv2``; a new up-block ResNet's 1×1 shortcut passes the
  hidden state through and ignores its skip connection). The grown UNet then predicts exactly what
  the old one did (tested), and training starts from a working prior instead of noise — the
  "zero-initialised residual" of Goyal et al. 2017 / Fixup, and ControlNet's zero convolutions.
* :class:`Checkpoint` writes ``checkpoint.pt`` atomically (model, EMA, optimiser, step, the
  Python and torch random states), so a run killed at any point resumes from its last checkpoint
  and, on the CPU, continues exactly as the uninterrupted run would have.
* :class:`TrainLog` appends one JSON line per logging window to ``train_log.jsonl``: step, mean
  loss, learning rate, steps/s over the window and wall time since the start (resumed runs add
  the time of earlier sessions).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import torch

from sdbench.io import atomic_write


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no CUDA device")
    return dev


def warm_start(model: torch.nn.Module, state: dict[str, torch.Tensor], embedding_suffixes: tuple[str, ...] = ()) -> dict:
    """Copy the tensors of ``state`` into ``model`` where name and shape match; for each name ending
    in one of ``embedding_suffixes`` whose table grew (more rows, same width) copy the old rows and
    set the new rows to the mean old row. Returns counts of copied, extended and skipped tensors and
    the share of the model's parameters that came from ``state``."""
    report, _ = _copy(model, state, embedding_suffixes)
    return report


def _copy(model: torch.nn.Module, state: dict[str, torch.Tensor], embedding_suffixes: tuple[str, ...]) -> tuple[dict, set]:
    own = model.state_dict()
    done: set[str] = set()
    extended, n_from = 0, 0
    with torch.no_grad():
        for name, target in own.items():
            source = state.get(name)
            if source is None:
                continue
            if source.shape == target.shape:
                target.copy_(source.to(target))
                n_from += target.numel()
            elif name.endswith(embedding_suffixes) and source.ndim == 2 and source.shape[1] == target.shape[1]:
                rows = min(source.shape[0], target.shape[0])
                target[:rows] = source[:rows].to(target)
                target[rows:] = source.mean(0).to(target)
                extended += 1
                n_from += rows * target.shape[1]
            else:
                continue
            done.add(name)
    total = sum(t.numel() for t in own.values())
    report = {
        "copied": len(done) - extended,
        "extended": extended,
        "skipped": len(own) - len(done),
        "share": round(n_from / max(total, 1), 4),
    }
    return report, done


def _layers(state: dict[str, torch.Tensor]) -> int:
    """Layers per block of a diffusers UNet state dict (ResNets in its first down block)."""
    return 1 + max(int(k.split(".")[3]) for k in state if k.startswith("down_blocks.0.resnets."))


def warm_start_unet(unet: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict:
    """Copy a smaller UNet's ``state`` into ``unet`` so that it computes the same function (see the
    module docstring). Both must share widths; ``unet`` may have more layers per block and
    cross-attention in more blocks. Returns :func:`warm_start`'s report plus ``identity_inits``,
    the number of new blocks started as the identity."""
    import re

    old, new = _layers(state), unet.config.layers_per_block
    if new < old:
        raise ValueError(f"cannot warm-start a UNet with {new} layers per block from one with {old}")
    up = re.compile(r"^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)$")

    def rename(key: str) -> str:  # an up block's last layer consumes the down block's first skip
        m = up.match(key)
        if m and int(m.group(3)) == old:
            return f"up_blocks.{m.group(1)}.{m.group(2)}.{new}.{m.group(4)}"
        return key

    report, done = _copy(unet, {rename(k): v for k, v in state.items()}, ())
    inits = 0
    with torch.no_grad():
        for name, module in unet.named_modules():
            kind = type(module).__name__
            if kind not in ("ResnetBlock2D", "Transformer2DModel") or any(k.startswith(name + ".") for k in done):
                continue
            if kind == "ResnetBlock2D":
                module.conv2.weight.zero_(), module.conv2.bias.zero_()
                if module.conv_shortcut is not None:  # [out, in, 1, 1]: pass the first `out` channels (the hidden state)
                    w = module.conv_shortcut.weight
                    w.zero_()
                    w[:, : w.shape[0], 0, 0] = torch.eye(w.shape[0])
                    module.conv_shortcut.bias.zero_()
            else:
                module.proj_out.weight.zero_(), module.proj_out.bias.zero_()
            inits += 1
    return {**report, "identity_inits": inits}


def rng_state(rng: random.Random) -> dict[str, Any]:
    state = {"python": rng.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(rng: random.Random, state: dict[str, Any]) -> None:
    rng.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpoint:
    """``folder/checkpoint.pt``: everything needed to continue a run (written atomically)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / "checkpoint.pt"

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, step: int, modules: dict[str, torch.nn.Module], optimizer, rng: random.Random, extra: dict) -> None:
        state = {
            "step": step,
            "modules": {k: m.state_dict() for k, m in modules.items()},
            "optimizer": optimizer.state_dict(),
            "rng": rng_state(rng),
            "extra": extra,
        }
        atomic_write(self.path, lambda f: torch.save(state, f))

    def load(self, modules: dict[str, torch.nn.Module], optimizer, rng: random.Random) -> tuple[int, dict]:
        """Restore ``modules``, ``optimizer`` and the random states; returns (step, extra)."""
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        for k, m in modules.items():
            m.load_state_dict(state["modules"][k])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(rng, state["rng"])
        return state["step"], state["extra"]


class TrainLog:
    """``train_log.jsonl`` writer: one line per window of steps (see the module docstring).

    Resuming keeps the lines up to the checkpoint's step and drops any written after it."""

    def __init__(self, folder: Path, resume_step: int | None = None, seconds_before: float = 0.0):
        self.path = Path(folder) / "train_log.jsonl"
        kept = []
        if resume_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= resume_step]
        self.path.write_text("".join(line + "\n" for line in kept))
        self.start = time.time() - seconds_before
        self.window_start = time.time()
        self.sums: dict[str, float] = {}
        self.count = 0
        self.last: dict[str, Any] = {}

    @property
    def seconds(self) -> float:
        return time.time() - self.start

    def add(self, **values: float) -> None:
        """Accumulate one step's values (each is averaged over the window)."""
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def write(self, step: int, **fields: Any) -> dict[str, Any]:
        now = time.time()
        means = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        entry = {
            "step": step,
            **means,
            **fields,
            "steps_per_s": round(self.count / max(now - self.window_start, 1e-9), 4),
            "seconds": round(self.seconds, 1),
        }
        self.sums, self.count, self.window_start, self.last = {}, 0, now, entry
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        print(json.dumps(entry), flush=True)
        return entry
