import pytest

from sdbench.budget import Budget
from sdbench.errors import UserError


@pytest.mark.parametrize("text,kind,value", [("steps:10", "steps", 10), ("seconds:2.5", "seconds", 2.5), ("nfe:64", "nfe", 64)])
def test_parse(text, kind, value):
    b = Budget.parse(text)
    assert (b.kind, b.value) == (kind, value)
    assert str(b) == text


@pytest.mark.parametrize("text", ["steps:0", "steps:-1", "hours:1", "steps", "nfe:1.5", "steps:abc"])
def test_parse_rejects(text):
    with pytest.raises(UserError):
        Budget.parse(text)


def test_exhausted_by_its_own_kind_only():
    b = Budget("nfe", 10)
    assert not b.exhausted(steps=1000, seconds=1e6, nfe=9)
    assert b.exhausted(steps=0, seconds=0, nfe=10)
