"""Representations rendered from cameras (:class:`sdbench.representations.base.Representation`)."""
