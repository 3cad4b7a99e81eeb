"""Diffusion priors behind one interface (:class:`sdbench.priors.base.Prior`)."""
