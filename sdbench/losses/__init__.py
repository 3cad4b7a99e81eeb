"""Score-distillation losses, one file each; see :mod:`sdbench.losses.base` for the interface."""
