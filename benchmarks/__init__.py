"""Performance and quality benchmarks (``make bench``); results go to ``benchmarks/results/``."""
