from __future__ import annotations

import pytest

from sdbench import registry
from sdbench.errors import UserError


def fresh(monkeypatch, spec: str) -> registry.Registry:
    monkeypatch.setenv(registry.ENV_VAR, spec)
    return registry.Registry("losses", "sdbench.losses.base:Loss")


def test_builtins_come_from_entry_points():
    reg = registry.Registry("losses", "sdbench.losses.base:Loss")
    entry = reg.entries()["sds"]
    assert entry.source == "built-in" and entry.target == "sdbench.losses.sds:SDS"
    from sdbench.losses.sds import SDS

    assert reg.get("sds") is SDS


def test_env_var_plugins_and_aliases(monkeypatch):
    reg = fresh(monkeypatch, "sdbench.losses:good=tests.fake_plugins:GoodLoss; sdbench.metrics:other=x:y")
    assert "good" in reg.names() and "other" not in reg.names()
    from tests.fake_plugins import GoodLoss

    assert reg.get("good") is GoodLoss
    assert reg.get("good-alias") is GoodLoss
    assert reg.canonical("good-alias") == "good"
    assert reg.entries()["good"].source == registry.ENV_VAR


def test_broken_plugins_are_listed_not_raised(monkeypatch):
    reg = fresh(
        monkeypatch,
        "sdbench.losses:missing=no_such_module_xyz:Loss sdbench.losses:wrong=tests.fake_plugins:NotALoss "
        "sdbench.losses:good=tests.fake_plugins:GoodLoss",
    )
    entries = {e.name: e for e in reg.load_all()}
    assert "cannot import no_such_module_xyz" in entries["missing"].error
    assert "not a subclass" in entries["wrong"].error
    assert not entries["good"].broken and not entries["sds"].broken
    with pytest.raises(UserError, match="broken"):
        reg.get("missing")


def test_a_name_claimed_twice_is_a_conflict_naming_both(monkeypatch):
    reg = fresh(monkeypatch, "sdbench.losses:sds=tests.fake_plugins:GoodLoss")
    entry = reg.entries()["sds"]
    assert entry.broken and "built-in" in entry.error and registry.ENV_VAR in entry.error
    with pytest.raises(UserError, match="claimed by"):
        reg.get("sds")


def test_unknown_name_suggests_close_matches():
    reg = registry.Registry("losses", "sdbench.losses.base:Loss")
    with pytest.raises(UserError, match=r"unknown loss 'sdss'; did you mean sds"):
        reg.get("sdss")
