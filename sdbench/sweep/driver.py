"""Who drives a sweep directory: the driver's record, and what a killed driver left behind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

from sdbench.errors import UserError

DRIVER_FILE = ".driver.json"


def end_stale_driver(out: Path) -> None:
    """End the local Ray processes a killed driver of this sweep left behind."""
    import psutil

    path = out / DRIVER_FILE
    if not path.is_file():
        return
    info = json.loads(path.read_text())
    if psutil.pid_exists(info.get("pid", -1)):
        try:
            if "sdbench" in " ".join(psutil.Process(info["pid"]).cmdline()) and info["pid"] != os.getpid():
                raise UserError(f"another sdbench sweep (pid {info['pid']}) is running on {out}; wait for it or stop it first")
        except psutil.Error:
            pass
    temp = info.get("ray_temp")
    if not temp:
        return
    victims = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.info["pid"] != os.getpid() and temp in " ".join(p.info["cmdline"] or []):
                victims.append(p)
        except psutil.Error:
            continue
    for p in victims:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=10)


def ray_temp_dir(out: Path) -> str:
    """A short, per-sweep Ray temp dir (Unix socket paths must stay under ~100 characters)."""
    return f"/tmp/sdbench-ray-{hashlib.sha1(str(out).encode()).hexdigest()[:10]}"
