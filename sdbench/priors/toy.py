"""The embedded toy priors: pixel-space text-to-image models of the toy world, shipped with sdbench.

Each is an ordinary diffusers checkpoint folder loaded through
:class:`~sdbench.priors.diffusers_prior.DiffusersPrior`, the same adapter as Stable Diffusion:

* ``toy`` — world v1 (``sdbench/world/weights/prior``), the default;
* ``toy2`` — world v2 (``sdbench/world/weights/prior_v2``: patterns, a front marking, colour
  ranges, ambiguous prompts); its prompts are checked against the v2 grammar.

A separate name rather than a config field because the prompt check runs on the class, before
any config is resolved. Retrain with ``python -m sdbench.world.train_prior [--world v2]`` (see the README).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from sdbench.errors import UserError
from sdbench.priors.diffusers_prior import DiffusersPrior

WEIGHTS = Path(__file__).resolve().parent.parent / "world" / "weights" / "prior"
WEIGHTS_V2 = WEIGHTS.parent / "prior_v2"


class ToyPrior(DiffusersPrior):
    """Toy-world prior (32x32 pixels, shipped weights): runs offline on a CPU."""

    name = "toy"

    @dataclass(frozen=True)
    class Config(DiffusersPrior.Config):
        path: str = ""
        """Checkpoint folder; empty means the weights shipped in the package."""

    def __init__(self, cfg: ToyPrior.Config = Config()):
        if not cfg.path:
            if not (WEIGHTS / "model_index.json").is_file():
                raise UserError(
                    f"the toy prior's weights are missing from {WEIGHTS}; "
                    "train them with 'python -m sdbench.world.train_prior --out " + str(WEIGHTS) + "'"
                )
            super().__init__(replace(cfg, path=str(WEIGHTS)))
            self.cfg = cfg
        else:
            super().__init__(cfg)

    world = "v1"

    @classmethod
    def check_prompt(cls, prompt: str) -> None:
        from sdbench.world.grammar import parse

        try:
            parse(prompt, cls.world)
        except ValueError as e:
            hint = "--prior toy2 for world v2's words, " if cls.world == "v1" else ""
            raise UserError(
                f"prompt {prompt!r} is outside the toy prior's vocabulary ({e}); "
                f"use {hint}--prior sd21 with local weights, or see 'sdbench world'"
            ) from None


class ToyPrior2(ToyPrior):
    """Toy-world v2 prior (32x32 pixels: patterns, a front marking, ambiguous prompts); runs offline on a CPU."""

    name = "toy2"
    world = "v2"

    @dataclass(frozen=True)
    class Config(DiffusersPrior.Config):
        path: str = ""
        """Checkpoint folder; empty means the v2 weights shipped in the package (sdbench/world/weights/prior_v2)."""

    def __init__(self, cfg: ToyPrior2.Config = Config()):
        if not cfg.path:
            self.check_available(cfg)
            DiffusersPrior.__init__(self, replace(cfg, path=str(WEIGHTS_V2)))
            self.cfg = cfg
        else:
            DiffusersPrior.__init__(self, cfg)

    @classmethod
    def check_available(cls, cfg: ToyPrior2.Config) -> None:
        if not cfg.path and not (WEIGHTS_V2 / "model_index.json").is_file():
            raise UserError(
                f"the toy v2 prior's weights are missing from {WEIGHTS_V2}; train them with "
                f"'python -m sdbench.world.train_prior --world v2 --warm-start {WEIGHTS} --out {WEIGHTS_V2}' "
                "(see the README), or pass --set prior.path=<folder>"
            )
