"""The embedded toy world: procedural scenes with ground truth, and the toy prior's training code."""
