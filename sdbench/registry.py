"""One registry mechanism for every plugin kind, fed by Python entry points.

Kinds and their entry-point groups: ``losses`` (``sdbench.losses``), ``representations``
(``sdbench.representations``), ``priors`` (``sdbench.priors``), ``metrics`` (``sdbench.metrics``).
sdbench's own plugins are declared in its ``pyproject.toml`` exactly like a third party's.

For development, ``SDBENCH_PLUGINS`` adds entries without installing a package:
``SDBENCH_PLUGINS="sdbench.losses:myloss=my_module:MyLoss; sdbench.metrics:m=pkg.mod:Metric"``.

Rules: a name is the entry point's name; a class may add ``aliases`` (a literal tuple in its class body,
so that they are read from the source without importing the plugin: a typo or an alias imports nothing
but the plugin it names); a name claimed by two sources is a conflict (both are named, neither is
used); a plugin that fails to import or is not a subclass of its kind's base class is *broken*:
``sdbench list`` shows why, and only using it fails.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Generic, TypeVar

from sdbench.errors import UserError

T = TypeVar("T")
ENV_VAR = "SDBENCH_PLUGINS"
GROUP_PREFIX = "sdbench."


@dataclass
class PluginEntry:
    """One registered name and what is known about it before and after loading."""

    kind: str
    name: str
    target: str  # "module:attribute"
    source: str  # "built-in", "<distribution> <version>" or "SDBENCH_PLUGINS"
    error: str | None = None
    cls: type | None = None
    aliases: tuple[str, ...] = ()
    also: list[str] = field(default_factory=list)  # conflicting sources
    declared: tuple[str, ...] | None = None  # aliases read from the source before loading (None: not read yet)

    @property
    def summary(self) -> str:
        doc = (self.cls.__doc__ or "").strip() if self.cls else ""
        return doc.splitlines()[0].strip() if doc else ""

    @property
    def broken(self) -> bool:
        return self.error is not None


def _load_target(target: str) -> object:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module.strip())
    for part in attr.strip().split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def declared_aliases(target: str) -> tuple[str, ...]:
    """The literal ``aliases = (...)`` in the body of the class ``target`` ("module:Class") names, read
    from the module's source without executing it; () when the source or a literal value is not there."""
    module, _, attr = target.partition(":")
    try:
        spec = importlib.util.find_spec(module.strip())  # imports parent packages only, not the module
    except (ImportError, ValueError):
        return ()
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return ()
    try:
        body = ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body
    except (OSError, SyntaxError, UnicodeDecodeError):
        return ()
    for part in attr.strip().split(".") if attr.strip() else ():
        cls = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == part), None)
        if cls is None:
            return ()
        body = cls.body
    for node in body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "aliases" for t in targets) and node.value is not None:
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return ()
            ok = isinstance(value, (tuple, list)) and all(isinstance(a, str) for a in value)
            return tuple(value) if ok else ()
    return ()


class Registry(Generic[T]):
    """Plugins of one kind: discovered lazily, loaded on use, never raising while listing."""

    def __init__(self, kind: str, base: str):
        self.kind = kind
        self.singular = kind[:-2] if kind.endswith("sses") else kind[:-1]
        self.group = GROUP_PREFIX + kind
        self._base_target = base
        self._entries: dict[str, PluginEntry] | None = None

    # ------------------------------------------------------------ discovery
    def refresh(self) -> None:
        """Forget what was discovered (after installing a plugin in the same process)."""
        self._entries = None

    def _discover(self) -> dict[str, PluginEntry]:
        found: list[PluginEntry] = []
        for ep in metadata.entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "unknown"
            source = "built-in" if dist_name == "sdbench" else f"{dist_name} {dist.version if dist else ''}".strip()
            found.append(PluginEntry(self.kind, ep.name, ep.value, source))
        for item in os.environ.get(ENV_VAR, "").replace(";", " ").split():
            group, _, spec = item.partition(":")
            name, _, target = spec.partition("=")
            if group == self.group and name and target:
                found.append(PluginEntry(self.kind, name, target, ENV_VAR))
        entries: dict[str, PluginEntry] = {}
        for e in found:
            if e.name in entries:
                first = entries[e.name]
                if first.target == e.target:
                    continue  # the same distribution seen twice on sys.path
                first.also.append(f"{e.source} ({e.target})")
                first.error = f"name claimed by {first.source} ({first.target}) and {', '.join(first.also)}"
            else:
                entries[e.name] = e
        return entries

    def entries(self) -> dict[str, PluginEntry]:
        if self._entries is None:
            self._entries = self._discover()
        return self._entries

    def names(self) -> list[str]:
        return sorted(self.entries())

    # -------------------------------------------------------------- loading
    def _load(self, entry: PluginEntry) -> PluginEntry:
        if entry.cls is not None or entry.error is not None:
            return entry
        try:
            obj = _load_target(entry.target)
        except Exception as e:  # a broken plugin must not break the others
            entry.error = f"cannot import {entry.target}: {type(e).__name__}: {e}".splitlines()[0]
            return entry
        base = _load_target(self._base_target)
        if not (isinstance(obj, type) and issubclass(obj, base)):  # type: ignore[arg-type]
            entry.error = f"{entry.target} is not a subclass of {base.__module__}.{base.__qualname__}"  # type: ignore[union-attr]
        elif not dataclasses.is_dataclass(getattr(obj, "Config", None)):
            entry.error = f"{entry.target} has no Config dataclass"
        else:
            entry.cls = obj
            entry.aliases = tuple(getattr(obj, "aliases", ()))
        return entry

    def load_all(self) -> list[PluginEntry]:
        """Every entry, loaded where it can be (for ``sdbench list``)."""
        return [self._load(e) for _, e in sorted(self.entries().items())]

    def aliases(self, entry: PluginEntry) -> tuple[str, ...]:
        """``entry``'s aliases: its class's once loaded, else those declared in its source (nothing is imported)."""
        if entry.cls is not None:
            return entry.aliases
        if entry.declared is None:
            entry.declared = declared_aliases(entry.target)
        return entry.declared

    def canonical(self, name: str) -> str:
        """The registered name behind ``name`` or one of its aliases; ``UserError`` if none.
        Imports no plugin (aliases are read from the plugins' sources)."""
        entries = self.entries()
        if name in entries:
            return name
        for entry in entries.values():
            if name in self.aliases(entry):
                return entry.name
        all_names = sorted(set(entries) | {a for e in entries.values() for a in self.aliases(e)})
        close = difflib.get_close_matches(name, all_names, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise UserError(
            f"unknown {self.singular} {name!r}{hint} (available: {', '.join(sorted(entries)) or 'none'}; see 'sdbench list')"
        )

    def get(self, name: str) -> type[T]:
        """The class registered as ``name`` (or an alias); ``UserError`` if unknown or broken."""
        entry = self._load(self.entries()[self.canonical(name)])
        if entry.error:
            raise UserError(f"{self.singular} {entry.name!r} is broken: {entry.error}")
        return entry.cls  # type: ignore[return-value]


LOSSES: Registry = Registry("losses", "sdbench.losses.base:Loss")
REPRESENTATIONS: Registry = Registry("representations", "sdbench.representations.base:Representation")
PRIORS: Registry = Registry("priors", "sdbench.priors.base:Prior")
METRICS: Registry = Registry("metrics", "sdbench.evaluation.base:Metric")
ALL = {r.kind: r for r in (LOSSES, REPRESENTATIONS, PRIORS, METRICS)}
