"""Metrics computed on a finished trial (:class:`sdbench.evaluation.base.Metric`)."""
