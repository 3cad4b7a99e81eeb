"""What a finished trial leaves besides its metrics: the representation's files, the final checkpoint, a turntable."""

from __future__ import annotations

from pathlib import Path

import torch

from sdbench.cameras import Cameras
from sdbench.io import save_gif
from sdbench.trial.checkpoint import CHECKPOINT_FILE, save_checkpoint
from sdbench.trial.state import TrialState


def export_files(state: TrialState, out_dir: Path) -> None:
    """The representation's own files, the final (non-resumable) checkpoint and, for 3D, ``turntable.gif``."""
    t = state.spec.trial
    rep = state.representation
    rep.export(out_dir)
    save_checkpoint(state, out_dir / CHECKPOINT_FILE, resumable=False)
    if rep.is_3d and t.turntable_frames > 0:
        cams = Cameras.orbit(t.turntable_frames, elevation=t.eval_elevation, radius=t.cameras.radius[0], fovy=t.cameras.fovy[0])
        with torch.no_grad():
            frames = rep.render(cams.to(state.prior.device), rep.resolution, rep.resolution).rgb
        save_gif(frames, out_dir / "turntable.gif")
