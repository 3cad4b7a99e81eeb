"""Wall-clock sections of the trial loop, for profiling (``benchmarks/step_profile.py``).

The loop wraps each part of a step in ``with TIMER.section(name):``. Off (the default), a section is one
attribute test and a shared no-op context manager, so ordinary trials pay nothing measurable; on
(:meth:`StepTimer.enable`), each section adds its wall seconds to ``TIMER.totals[name]`` and counts
its calls. Sections may nest (the caller subtracts inner from outer); timing is per process, so a
profile runs one trial at a time.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict

_OFF = contextlib.nullcontext()


class _Section:
    __slots__ = ("timer", "name", "start")

    def __init__(self, timer: StepTimer, name: str):
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self.timer.totals[self.name] += time.perf_counter() - self.start
        self.timer.calls[self.name] += 1


class StepTimer:
    """Seconds and calls per named section, while enabled."""

    def __init__(self) -> None:
        self.enabled = False
        self.totals: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)

    def section(self, name: str):
        """A context manager timing ``name`` (a shared no-op while disabled)."""
        return _Section(self, name) if self.enabled else _OFF

    def enable(self, on: bool = True) -> None:
        self.enabled = on

    def reset(self) -> None:
        self.totals.clear()
        self.calls.clear()


TIMER = StepTimer()
"""The process's timer; the trial loop reports to it."""
