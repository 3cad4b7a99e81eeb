"""Janus score: the truth follows from camera and marking; a constructed two-faced read-out fails."""

from __future__ import annotations

import math

import pytest
import torch

from sdbench.cameras import Cameras
from sdbench.evaluation.janus import janus_score, marking_visibility

ORBIT = Cameras.orbit(8, elevation=15.0)  # azimuths 0, 45, 90, 135, -180, -135, -90, -45


def test_truth_visibility_from_camera_and_marking_direction():
    visible, hidden = marking_visibility(ORBIT.azimuth, ORBIT.elevation)
    # front marking (+x): visible within 60° of it, hidden beyond 120°, the sides (±90°) undecided
    assert visible.tolist() == [True, True, False, False, False, False, False, True]
    assert hidden.tolist() == [False, False, False, True, True, True, False, False]
    visible, hidden = marking_visibility(ORBIT.azimuth, ORBIT.elevation, marking_azimuth=90.0)
    assert visible.tolist() == [False, True, True, True, False, False, False, False]
    assert hidden.tolist() == [False, False, False, False, False, True, True, True]
    overhead = marking_visibility(torch.tensor([0.0, 0.0]), torch.tensor([89.0, -89.0]))
    assert not overhead[0].any() and not overhead[1].any()  # from straight above, the front is edge-on
    strict = marking_visibility(torch.tensor([80.0, 100.0]), torch.tensor([0.0, 0.0]), margin=0.0)
    assert strict[0].tolist() == [True, False] and strict[1].tolist() == [False, True]
    with pytest.raises(ValueError, match="margin"):
        marking_visibility(ORBIT.azimuth, ORBIT.elevation, margin=90.0)


def test_a_correct_object_passes():
    visible, hidden = marking_visibility(ORBIT.azimuth, ORBIT.elevation)
    p = torch.tensor([0.95, 0.9, 0.5, 0.1, 0.05, 0.1, 0.5, 0.9])  # seen at the front, fading to the back
    m = janus_score(p, visible, hidden)
    assert m["janus_two_faced"] == 0.0 and m["janus_agreement"] == 1.0
    assert m["janus_false_front"] == pytest.approx((0.1 + 0.05 + 0.1) / 3)
    assert m["janus_missed_front"] == pytest.approx(1 - (0.95 + 0.9 + 0.9) / 3)


def test_a_two_faced_object_fails():
    visible, hidden = marking_visibility(ORBIT.azimuth, ORBIT.elevation)
    p = torch.tensor([0.95, 0.6, 0.1, 0.6, 0.95, 0.6, 0.1, 0.6])  # faces at 0° and 180°
    m = janus_score(p, visible, hidden)
    assert m["janus_two_faced"] == 1.0
    assert m["janus_false_front"] == pytest.approx((0.6 + 0.95 + 0.6) / 3) and m["janus_false_front"] > 0.5
    assert m["janus_agreement"] == pytest.approx(3 / 6)


def test_a_faceless_or_back_to_front_object_is_not_two_faced_but_is_wrong():
    visible, hidden = marking_visibility(ORBIT.azimuth, ORBIT.elevation)
    faceless = janus_score(torch.full((8,), 0.05), visible, hidden)
    assert faceless["janus_two_faced"] == 0.0 and faceless["janus_missed_front"] == pytest.approx(0.95)
    backwards = janus_score(torch.tensor([0.05, 0.05, 0.5, 0.9, 0.95, 0.9, 0.5, 0.05]), visible, hidden)
    assert backwards["janus_two_faced"] == 0.0 and backwards["janus_false_front"] > 0.9
    assert backwards["janus_agreement"] == 0.0


def test_no_decided_views_give_nan_and_bad_input_is_rejected():
    none = torch.zeros(2, dtype=torch.bool)
    m = janus_score(torch.tensor([0.9, 0.1]), none, none)
    assert math.isnan(m["janus_false_front"]) and math.isnan(m["janus_agreement"]) and m["janus_two_faced"] == 0.0
    with pytest.raises(ValueError, match="both visible and hidden"):
        janus_score(torch.tensor([0.9]), torch.tensor([True]), torch.tensor([True]))
    with pytest.raises(ValueError, match="visible"):
        janus_score(torch.tensor([0.9, 0.1]), torch.tensor([True]), torch.tensor([False]))
