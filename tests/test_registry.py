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


def test_aliases_and_typos_import_no_plugin():
    """A typo or an alias is resolved from the plugins' sources: no plugin module is imported (checked in a fresh process)."""
    import subprocess
    import sys

    code = """
import sys
from sdbench import registry
from sdbench.errors import UserError
out = [registry.REPRESENTATIONS.canonical("3dgs"), registry.REPRESENTATIONS.canonical("2d")]
for reg, typo in ((registry.REPRESENTATIONS, "3dgz"), (registry.LOSSES, "sdss"), (registry.METRICS, "clipp")):
    try:
        reg.canonical(typo)
    except UserError as e:
        out.append(str(e).split("; did you mean ")[1].split()[0])
prefixes = tuple(f"sdbench.{k}." for k in ("losses", "representations", "priors", "evaluation"))
out.append(sorted(m for m in sys.modules if m.startswith(prefixes) or m in ("torch", "diffusers", "open_clip")))
print(out)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(["gaussians", "image", "3dgs?", "sds", "clip", []])


def test_declared_aliases_are_read_from_literals_only(tmp_path, monkeypatch):
    (tmp_path / "aliasmod.py").write_text(
        "class A:\n    aliases = ('a1', 'a2')\n"
        "class B:\n    aliases = tuple('b')\n"
        "class C:\n    class Inner:\n        aliases: tuple = ['c']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.declared_aliases("aliasmod:A") == ("a1", "a2")
    assert registry.declared_aliases("aliasmod:B") == ()  # not a literal: found once the plugin is loaded
    assert registry.declared_aliases("aliasmod:C.Inner") == ("c",)
    assert registry.declared_aliases("no_such_module_xyz:A") == () and registry.declared_aliases("aliasmod:Z") == ()
    assert "aliasmod" not in __import__("sys").modules
