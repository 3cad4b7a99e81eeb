"""The toy world's language.

World v1: ``a {colour} {shape}[, {view} view][, {degradation}]``.

World v2 (a superset: every v1 prompt parses to the same thing):
``a [{colour}] [{pattern}] {shape | object}[ with a face][, {view} view][, {degradation}]``,
e.g. "a red striped cube", "a blue cube with a face", "a cube" (colour omitted), "a red object"
(shape omitted), "a dotted object". An omitted colour or shape is *ambiguous*: the v2 training
data draws it uniformly (:mod:`sdbench.world.data_v2`), so the prior's conditional is multimodal.
No pattern word means ``plain`` (the word "plain" may also be said); no "with a face" means no
front marking.

Degradation words describe images degraded that way in the training data (see
:mod:`sdbench.world.degrade`), so the negative prompts of CSD, NFSD and ISM mean something to
the toy prior. Words outside the vocabulary are unknown to its tokenizer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sdbench.cameras import VIEWS
from sdbench.world.scenes import COLOURS, MARKINGS, PATTERNS, SHAPES

World = Literal["v1", "v2"]
WORLDS = ("v1", "v2")
DEGRADATIONS = ("blurry", "dark", "low contrast", "noisy", "oversaturated")
FILLER = ("a", "an", "view")
OBJECT = "object"  # the noun of a prompt that omits the shape
# v2 words, appended after v1's so that v1 token ids stay the same in the v2 tokenizer.
V2_WORDS = (*PATTERNS, OBJECT, "with", *MARKINGS)
# Words only the evaluator's read-out prompts use ("an object with no face"); no prompt takes them.
READOUT_WORDS = ("no",)


def words(text: str) -> list[str]:
    """Lower-case word split used by the toy tokenizer and the prompt check."""
    return re.findall(r"[a-z]+", text.lower())


def vocabulary(world: World = "v1") -> list[str]:
    """Every word a prompt of ``world`` may use, in a fixed order (v2 extends v1's list)."""
    _check_world(world)
    groups = [FILLER, tuple(COLOURS), SHAPES, VIEWS, DEGRADATIONS]
    if world == "v2":
        groups.append(V2_WORDS)
    vocab: list[str] = []
    for group in groups:
        for phrase in group:
            for w in words(phrase):
                if w not in vocab:
                    vocab.append(w)
    return vocab


def token_vocabulary(world: World = "v1") -> list[str]:
    """The toy tokenizer's words: the prompt vocabulary, plus (v2) the evaluator's read-out words."""
    return vocabulary(world) + (list(READOUT_WORDS) if world == "v2" else [])


def _check_world(world: str) -> None:
    if world not in WORLDS:
        raise ValueError(f"unknown toy world {world!r}; expected one of {WORLDS}")


@dataclass(frozen=True)
class ToyPrompt:
    """A parsed toy prompt. ``colour`` / ``shape`` are ``None`` where the prompt omits them (v2);
    ``pattern`` is ``None`` where no pattern word is said (the surface is plain)."""

    colour: str | None
    shape: str | None
    view: str | None = None
    degradations: tuple[str, ...] = ()
    pattern: str | None = None
    marking: str | None = None

    @property
    def surface(self) -> str:
        """The true surface pattern: ``plain`` unless a pattern word is said."""
        return self.pattern or "plain"

    @property
    def ambiguous(self) -> bool:
        """True when the colour or the shape is omitted (the data draws it uniformly)."""
        return self.colour is None or self.shape is None

    @property
    def base(self) -> str:
        """The object phrase without view and degradations, e.g. ``a red striped cube with a face``."""
        parts = [w for w in (self.colour, self.pattern) if w] + [self.shape or OBJECT]
        text = "an object" if parts == [OBJECT] else "a " + " ".join(parts)  # v1 says "a orange cube": kept
        if self.marking:
            text += f" with a {self.marking}"
        return text

    def text(self) -> str:
        parts = [self.base]
        if self.view:
            parts.append(f"{self.view} view")
        parts.extend(self.degradations)
        return ", ".join(parts)


def base_prompts() -> list[str]:
    """All ``a {colour} {shape}`` prompts, colours outer, shapes inner."""
    return [f"a {c} {s}" for c in COLOURS for s in SHAPES]


def full_prompts() -> list[str]:
    """Every unambiguous v2 object prompt (colour, pattern, shape, marking), in a fixed order."""
    return [
        ToyPrompt(c, s, pattern=None if p == "plain" else p, marking=m).base
        for c in COLOURS
        for p in PATTERNS
        for s in SHAPES
        for m in (None, *MARKINGS)
    ]


def ambiguous_prompts() -> list[str]:
    """The v2 prompts that omit the colour or the shape (plain, no marking): ``a cube``, ``a red object``, ..."""
    return [ToyPrompt(None, s).base for s in SHAPES] + [ToyPrompt(c, None).base for c in COLOURS]


def readout_prompts() -> dict[str, list[str]]:
    """The v2 evaluator's zero-shot read-outs: one prompt per class of each attribute, in the order
    of :data:`~sdbench.world.scenes.SHAPES`, ``COLOURS``, ``PATTERNS`` and (marking) hidden, visible."""
    return {
        "shape": [ToyPrompt(None, s).base for s in SHAPES],
        "colour": [ToyPrompt(c, None).base for c in COLOURS],
        "pattern": [ToyPrompt(None, None, pattern=p).base for p in PATTERNS],
        "marking": [f"an object with no {MARKINGS[0]}", f"an object with a {MARKINGS[0]}"],
    }


def parse(prompt: str, world: World = "v1") -> ToyPrompt:
    """Parse a toy prompt of ``world``; raise ``ValueError`` naming the first problem."""
    _check_world(world)
    ws = words(prompt)
    if not ws:
        raise ValueError("the prompt is empty")
    known = set(vocabulary(world))
    unknown = [w for w in ws if w not in known]
    if unknown:
        raise ValueError(f"unknown word{'s' if len(unknown) > 1 else ''}: {', '.join(dict.fromkeys(unknown))}")
    colours = [w for w in ws if w in COLOURS]
    shapes = [w for w in ws if w in SHAPES]
    views = [w for w in ws if w in VIEWS]
    text = " ".join(ws)
    degradations = tuple(d for d in DEGRADATIONS if d in text)
    view = views[0] if views else None
    if world == "v1":
        if len(colours) != 1 or len(shapes) != 1:
            raise ValueError("a toy prompt names exactly one colour and one shape, e.g. 'a red cube'")
        return ToyPrompt(colours[0], shapes[0], view, degradations)
    nouns = shapes + [w for w in ws if w == OBJECT]
    patterns = [w for w in ws if w in PATTERNS]
    markings = [w for w in ws if w in MARKINGS]
    if len(colours) > 1 or len(patterns) > 1 or len(markings) > 1 or len(views) > 1:
        raise ValueError("a toy prompt names at most one colour, one pattern, one marking and one view")
    if len(nouns) != 1:
        raise ValueError("a toy prompt names exactly one shape or 'object', e.g. 'a red cube' or 'a striped object'")
    if ("with" in ws) != bool(markings):
        raise ValueError("a front marking is said as 'with a face', e.g. 'a red cube with a face'")
    return ToyPrompt(
        colours[0] if colours else None,
        shapes[0] if shapes else None,
        view,
        degradations,
        pattern=patterns[0] if patterns else None,
        marking=markings[0] if markings else None,
    )


def describe(world: World = "v2") -> list[str]:
    """Lines describing the language of ``world`` (printed by ``sdbench world``)."""
    _check_world(world)
    if world == "v1":
        form = "a {colour} {shape}[, {view} view][, {degradation}]"
    else:
        form = "a [{colour}] [{pattern}] {shape|object}[ with a face][, {view} view][, {degradation}]"
    lines = [
        f"colours:      {', '.join(COLOURS)}",
        f"shapes:       {', '.join(SHAPES)}",
    ]
    if world == "v2":
        lines += [
            f"patterns:     {', '.join(PATTERNS)} (no pattern word: plain)",
            f"markings:     {', '.join(f'with a {m}' for m in MARKINGS)} (on the front, +x; the back is plain)",
            "ambiguous:    omit the colour or say 'object' for the shape ('a cube', 'a red object')",
        ]
    lines += [
        f"views:        {', '.join(VIEWS)} (appended by the trial loop per camera)",
        f"degradations: {', '.join(DEGRADATIONS)} (for negative prompts)",
    ]
    return [form, *lines]
