from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from sdbench import config as cfgutil
from sdbench.errors import UserError


@dataclass(frozen=True)
class Inner:
    x: int = 1
    pair: tuple[float, float] = (0.1, 0.2)


@dataclass(frozen=True)
class Outer:
    scale: float = 7.5
    name: str = "a"
    flag: bool = False
    mode: Literal["sds", "uniform"] = "sds"
    clip: float | None = None
    words: tuple[str, ...] = ("x",)
    inner: Inner = Inner()


def test_round_trip_through_dict():
    cfg = Outer(scale=3.0, words=("a", "b"), inner=Inner(5, (0.3, 0.4)))
    data = cfgutil.to_dict(cfg)
    assert data["inner"] == {"x": 5, "pair": [0.3, 0.4]}
    assert cfgutil.from_dict(Outer, data) == cfg


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("scale", "100", 100.0),
        ("name", "42", "42"),
        ("flag", "true", True),
        ("flag", "off", False),
        ("mode", "uniform", "uniform"),
        ("clip", "none", None),
        ("clip", "0.5", 0.5),
        ("words", "a,b,c", ("a", "b", "c")),
        ("inner.pair", "0.02,0.98", (0.02, 0.98)),
        ("inner.pair", "[0.02, 0.5]", (0.02, 0.5)),
        ("inner.x", "3", 3),
    ],
)
def test_override_parses_by_field_type(key, value, expected):
    cfg = cfgutil.override(Outer(), key, value)
    head, _, rest = key.partition(".")
    got = getattr(getattr(cfg, head), rest) if rest else getattr(cfg, head)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("scal", "1", "did you mean 'scale'"),
        ("scale", "abc", "not a number"),
        ("mode", "bogus", "not one of"),
        ("inner.pair", "1,2,3", "expected 2 values"),
        ("inner.x", "1.5", "not an integer"),
        ("name.x", "1", "has no sub-keys"),
    ],
)
def test_override_rejects_bad_input_with_a_useful_message(key, value, fragment):
    with pytest.raises(UserError, match=fragment):
        cfgutil.override(Outer(), key, value)


def test_bad_value_message_names_the_key_once():
    with pytest.raises(UserError) as e:
        cfgutil.override(Outer(), "flag", "maybe", "loss")
    assert str(e.value) == "bad value for loss.flag: 'maybe' is not true/false"


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(UserError, match="unknown config key"):
        cfgutil.from_dict(Outer, {"scale": 1.0, "bogus": 2})


def test_field_docs_reads_docstrings_under_fields():
    from sdbench.losses.sds import SDS

    docs = cfgutil.field_docs(SDS.Config)
    assert "guidance" in docs["cfg_scale"].lower()
