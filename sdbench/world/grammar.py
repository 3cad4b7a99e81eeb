"""The toy world's language: ``a {colour} {shape}[, {view} view][, {degradation}]``.

Degradation words describe images degraded that way in the training data (see
:mod:`sdbench.world.degrade`), so the negative prompts of CSD, NFSD and ISM mean something to
the toy prior. Words outside the vocabulary are unknown to its tokenizer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sdbench.cameras import VIEWS
from sdbench.world.scenes import COLOURS, SHAPES

DEGRADATIONS = ("blurry", "dark", "low contrast", "noisy", "oversaturated")
FILLER = ("a", "an", "view")


def words(text: str) -> list[str]:
    """Lower-case word split used by the toy tokenizer and the prompt check."""
    return re.findall(r"[a-z]+", text.lower())


def vocabulary() -> list[str]:
    """Every word the toy tokenizer knows, in a fixed order."""
    vocab: list[str] = []
    for group in (FILLER, tuple(COLOURS), SHAPES, VIEWS, DEGRADATIONS):
        for phrase in group:
            for w in words(phrase):
                if w not in vocab:
                    vocab.append(w)
    return vocab


@dataclass(frozen=True)
class ToyPrompt:
    colour: str
    shape: str
    view: str | None = None
    degradations: tuple[str, ...] = ()

    @property
    def base(self) -> str:
        return f"a {self.colour} {self.shape}"

    def text(self) -> str:
        parts = [self.base]
        if self.view:
            parts.append(f"{self.view} view")
        parts.extend(self.degradations)
        return ", ".join(parts)


def base_prompts() -> list[str]:
    """All ``a {colour} {shape}`` prompts, colours outer, shapes inner."""
    return [f"a {c} {s}" for c in COLOURS for s in SHAPES]


def parse(prompt: str) -> ToyPrompt:
    """Parse a toy prompt; raise ``ValueError`` naming the first problem."""
    ws = words(prompt)
    if not ws:
        raise ValueError("the prompt is empty")
    known = set(vocabulary())
    unknown = [w for w in ws if w not in known]
    if unknown:
        raise ValueError(f"unknown word{'s' if len(unknown) > 1 else ''}: {', '.join(dict.fromkeys(unknown))}")
    colours = [w for w in ws if w in COLOURS]
    shapes = [w for w in ws if w in SHAPES]
    if len(colours) != 1 or len(shapes) != 1:
        raise ValueError("a toy prompt names exactly one colour and one shape, e.g. 'a red cube'")
    views = [w for w in ws if w in VIEWS]
    text = " ".join(ws)
    degradations = tuple(d for d in DEGRADATIONS if d in text)
    return ToyPrompt(colours[0], shapes[0], views[0] if views else None, degradations)
