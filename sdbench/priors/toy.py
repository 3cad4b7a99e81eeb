"""The embedded toy prior: a pixel-space text-to-image model of the toy world, shipped with sdbench.

It is an ordinary diffusers checkpoint folder (``sdbench/world/weights/prior``) loaded through
:class:`~sdbench.priors.diffusers_prior.DiffusersPrior`, the same adapter as Stable Diffusion.
Retrain it with ``python -m sdbench.world.train_prior`` (see the README).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from sdbench.errors import UserError
from sdbench.priors.diffusers_prior import DiffusersPrior

WEIGHTS = Path(__file__).resolve().parent.parent / "world" / "weights" / "prior"


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

    @classmethod
    def check_prompt(cls, prompt: str) -> None:
        from sdbench.world.grammar import parse

        try:
            parse(prompt)
        except ValueError as e:
            raise UserError(
                f"prompt {prompt!r} is outside the toy prior's vocabulary ({e}); "
                "use --prior sd21 with local weights, or see 'sdbench world'"
            ) from None
