"""What ran a trial: hardware, library versions, and peak memory."""

from __future__ import annotations

import os
import platform
import socket
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch

from sdbench.results import Hardware

PACKAGES = ("sdbench", "torch", "diffusers", "transformers", "gsplat", "nerfacc", "open_clip_torch", "clean-fid", "ray")


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ray_node_id() -> str | None:
    """The Ray node this process runs on, when it is a Ray worker (a sweep's trial); else None.

    Ray is never imported here: a process that has not imported it is not a Ray worker."""
    ray = sys.modules.get("ray")
    try:
        if ray is not None and ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - a record of where a trial ran must not fail the trial
        return None
    return None


def hardware(device: torch.device) -> Hardware:
    return Hardware(
        device=str(device),
        cpu=cpu_model(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        platform=platform.platform(),
        hostname=socket.gethostname(),
        node_id=ray_node_id(),
    )


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


class PeakMemory:
    """Peak memory of a stretch of work: CUDA max-allocated on a GPU, else the process's peak RSS
    (Linux ``VmHWM``, reset at start through ``/proc/self/clear_refs`` where the kernel allows)."""

    def __init__(self, device: torch.device):
        self.device = device

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def legacy_path() -> bool:
    """``SDBENCH_LEGACY_PATH=1``: run trials the way sdbench did before the throughput work (no
    in-process caches of evaluation truths, per-parameter NaN/inf scan, the autograd CPU splat
    renderer). For ``benchmarks/throughput.py``, ``benchmarks/splat_cpu.py`` and the equivalence
    tests only; results are the same either way, the renderer's to float rounding (see
    ``tests/test_throughput.py``, ``tests/representations/test_splat.py``)."""
    return os.environ.get("SDBENCH_LEGACY_PATH", "") == "1"
