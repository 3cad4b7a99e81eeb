"""The Janus score on ground truth: how often does a truly one-faced object read as two-faced?

    python -m benchmarks.janus_truth          # → benchmarks/results/janus_truth.json
    python -m benchmarks.janus_truth --label v21   # → janus_truth_v21.json (a world version beside the first)

Control (c) (``docs/controls.md``) counts SDS results as two-faced with the v2 evaluator's per-view face
read-out, and the evaluator misreads the face in about one view in twenty (``toy_world_v2.json``). This
script measures the score's false-positive rate where the answer is known: the 30 front-marked prompts of
control (c), each object rendered by the world's own renderer (``render_scene``, the colour word's vivid
albedo, plain surface, the face on the front) on the trials' evaluation orbit (8 views, elevation 15°,
radius 3, fov 40°; ``TrialConfig`` defaults), then scored exactly as a trial's ``toy2`` metric scores a
3D result (:func:`sdbench.evaluation.janus.janus_score`, margin 30°, threshold 0.5). Also at 4 rotated
orbits (start azimuths 0°, 11.25°, 22.5°, 33.75°) so the views are not only the 8 canonical ones.
Measurement only: nothing here feeds back into the metric or the controls.
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import label_arg, labelled, save


def main(label: str = "") -> dict:
    from sdbench.cameras import Cameras
    from sdbench.evaluation.janus import janus_score, marking_visibility
    from sdbench.evaluation.toy import EVALUATOR_V2_DIR, evaluator_weights_id, load_evaluator, read_attributes
    from sdbench.world.scenes import COLOURS, SHAPES, render_scene

    start = time.time()
    torch.set_num_threads(1)
    scorer = load_evaluator("cpu", str(EVALUATOR_V2_DIR))
    rows = []
    for offset in (0.0, 11.25, 22.5, 33.75):
        base = Cameras.orbit(8, elevation=15.0, radius=3.0, fovy=40.0)
        cams = Cameras(base.azimuth + offset, base.elevation, base.radius, base.fovy)
        visible, hidden = marking_visibility(cams.azimuth, cams.elevation, margin=30.0)
        for colour in COLOURS:
            for shape in SHAPES:
                img = render_scene(shape, colour, cams, 32, marking="face").rgb
                r = read_attributes(img.float(), scorer)
                score = janus_score(r.probs["marking"][:, 1], visible, hidden, 0.5)
                rows.append({"prompt": f"a {colour} {shape} with a face", "azimuth_offset": offset, **score})
    two = [r["janus_two_faced"] for r in rows]
    canonical = [r["janus_two_faced"] for r in rows if r["azimuth_offset"] == 0.0]
    results = {
        "what": "toy2_janus_two_faced on ground-truth one-faced renders (the false-positive rate of control (c)'s metric)",
        "evaluator_id": evaluator_weights_id(EVALUATOR_V2_DIR),
        "orbit": {"views": 8, "elevation": 15.0, "radius": 3.0, "fovy": 40.0, "margin": 30.0, "threshold": 0.5},
        "two_faced_share_canonical_orbit": sum(canonical) / len(canonical),
        "two_faced_share_all_orbits": sum(two) / len(two),
        "mean_false_front": sum(r["janus_false_front"] for r in rows) / len(rows),
        "mean_missed_front": sum(r["janus_missed_front"] for r in rows) / len(rows),
        "n": len(rows),
        "rows": rows,
        "seconds": round(time.time() - start, 1),
    }
    save(labelled("janus_truth", label), results)
    return results


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--label", default="", type=label_arg, help="write janus_truth_LABEL.json (another world version's evaluator)"
    )
    a = ap.parse_args()
    r = main(a.label)
    print(
        f"two-faced on ground truth: {r['two_faced_share_canonical_orbit']:.3f} (canonical orbit, 30 objects), "
        f"{r['two_faced_share_all_orbits']:.3f} (4 orbits, {r['n']} renders); mean false front {r['mean_false_front']:.3f}"
    )
