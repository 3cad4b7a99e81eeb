"""Who drives a sweep directory: one driver at a time (a lock file), and what a killed driver left behind.

``OUT/.sweep.lock`` holds an exclusive ``flock`` for as long as a driver runs, and names it (pid, host,
start time, its local Ray temp dir). A second sweep on the same ``--out`` finds the lock held and is
refused with one line naming the holder. The kernel releases a ``flock`` when its process dies, so a
lock left by a killed driver is free: the next driver takes it over and first ends the Ray processes
the dead one left behind. On a filesystem without ``flock`` the recorded pid and host decide instead.
A driver that ends normally leaves the file empty.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdbench.errors import UserError

LOCK_FILE = ".sweep.lock"
DRIVER_FILE = ".driver.json"  # the driver record of sdbench before the lock file; read once, then removed


@dataclass
class SweepLock:
    """A held lock on a sweep directory; :meth:`release` (or the driver's death) frees it."""

    path: Path
    fd: int
    info: dict[str, Any]
    taken_over: dict[str, Any] | None
    """The record of a driver that died holding the directory (None: the lock was free and clean)."""

    def record(self, **fields: Any) -> None:
        """Add fields (e.g. ``ray_temp``) to the lock's record of this driver."""
        self.info.update(fields)
        _write_record(self.fd, self.info)

    def release(self) -> None:
        if self.fd < 0:
            return
        os.ftruncate(self.fd, 0)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        except OSError:  # a filesystem without flock (the record decided)
            pass
        os.close(self.fd)
        self.fd = -1


def _write_record(fd: int, info: dict[str, Any]) -> None:
    data = (json.dumps(info) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _read_record(fd: int) -> dict[str, Any] | None:
    raw = os.pread(fd, 1 << 16, 0)
    if not raw.strip():
        return None
    try:
        info = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}  # a record cut short by the holder's death
    return info if isinstance(info, dict) else {}


def _process_started(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _alive(info: dict[str, Any]) -> bool:
    """Whether the driver ``info`` names still runs (only decidable on this host)."""
    if info.get("host") != socket.gethostname():
        return True  # another machine's driver: assume it runs
    started = _process_started(int(info.get("pid", -1)))
    return started is not None and abs(started - float(info.get("process_started", started))) < 1.0


def _holder(info: dict[str, Any] | None, out: Path) -> str:
    if not info:
        return f"another sdbench sweep is writing to {out}"
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.get("started", 0)))
    return f"another sdbench sweep (pid {info.get('pid')} on {info.get('host')}, since {since}) is writing to {out}"


def acquire(out: Path) -> SweepLock:
    """Lock the sweep directory ``out`` for this driver; ``UserError`` if another driver holds it."""
    path = Path(out) / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            previous = _read_record(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UserError(f"{_holder(previous, out)}; wait for it to end, or stop it") from None
            if previous and _alive(previous):  # no flock here (ENOLCK, ...): the record decides
                raise UserError(f"{_holder(previous, out)}; wait for it to end, or stop it") from None
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.path.exists(path) and os.fstat(fd).st_ino == os.stat(path).st_ino:
            break
        os.close(fd)  # the file was replaced while we waited: lock the new one
    previous = _read_record(fd)
    legacy = Path(out) / DRIVER_FILE
    if legacy.is_file():
        try:
            previous = previous or json.loads(legacy.read_text())
        except (OSError, json.JSONDecodeError):
            pass
        legacy.unlink(missing_ok=True)
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process_started": _process_started(os.getpid()),
        "started": time.time(),
        "ray_temp": None,
    }
    _write_record(fd, info)
    lock = SweepLock(path, fd, info, previous)
    if previous is not None:
        end_stale_driver(previous)
    return lock


def end_stale_driver(info: dict[str, Any]) -> None:
    """End the local Ray processes a killed driver (its lock record ``info``) left behind."""
    import psutil

    temp = info.get("ray_temp")
    if not temp or info.get("host", socket.gethostname()) != socket.gethostname():
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
