"""sdbench: a benchmark and framework for score-distillation losses in text-to-3D."""

__version__ = "0.1.0"
