"""What a sweep is: prompts files, sweep definitions (TOML), the grid's names and their selection."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdbench.budget import Budget
from sdbench.errors import UserError


def read_prompts(path: Path) -> list[str]:
    """Prompts file: UTF-8, one prompt per line; blank lines and ``#`` comments are ignored."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompts file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"prompts file {path} is not UTF-8 text") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not prompts:
        raise UserError(f"prompts file {path} holds no prompts (one per line; '#' starts a comment)")
    return list(dict.fromkeys(prompts))


@dataclass(frozen=True)
class SweepConfig:
    """The grid and what every trial shares (written to ``sweep.json``)."""

    prompts: tuple[str, ...]
    losses: tuple[str, ...]
    representations: tuple[str, ...] = ("gaussians",)
    priors: tuple[str, ...] = ("toy",)
    seeds: tuple[int, ...] = (0,)
    budget: Budget = Budget("steps", 500)
    overrides: tuple[str, ...] = ()


DEFINITION_KEYS = {
    "prompts": "a prompts file (relative to the definition) or a list of prompts",
    "losses": "loss names",
    "representations": "representation names",
    "priors": "prior names or checkpoint folders",
    "seeds": "list of integer seeds",
    "budget": "steps:N, seconds:S or nfe:K",
    "set": "list of KEY=VALUE overrides",
}


def load_definition(path: Path) -> list[SweepConfig]:
    """A sweep definition file (TOML): the grid keys at the top level, optionally ``[[group]]`` tables.

    Top-level keys (``prompts``, ``losses``, ``representations``, ``priors``, ``seeds``, ``budget``,
    ``set``) are the defaults of every group; a group replaces any of them, except ``set``, which it
    extends. Without groups the file is one grid. ``base = "other.toml"`` starts from another definition:
    this file's top-level keys replace the base's (``set`` extends it), and its groups, if it has any,
    replace the base's groups; ``base_groups = [names]`` keeps only those of the base's groups
    (``claims-image.toml`` runs ``claims.toml``'s groups on another representation in a few lines).
    ``prompts`` names a prompts file relative to the definition (a base's: relative to the base), or lists
    the prompts inline. Returns one :class:`SweepConfig` per group.
    """
    path = Path(path)
    data = _read_toml(path, ())
    has_groups = "group" in data
    groups = data.pop("group", [{}])
    for key in ("name", "description"):
        data.pop(key, None)
    if not isinstance(groups, list) or not groups:
        raise UserError(f"{path}: 'group' must be a non-empty array of tables ([[group]])")
    out = []
    for n, group in enumerate(groups, 1):
        group = dict(group)
        group.pop("name", None)
        where = f"{path} group {n}" if has_groups else str(path)
        for key in (*data, *group):
            if key not in DEFINITION_KEYS:
                raise UserError(f"{where}: unknown key {key!r}; known keys: {', '.join(DEFINITION_KEYS)}")
        listed = [v for d in (data, group) for v in ([d["set"]] if isinstance(d.get("set"), str) else d.get("set", []))]
        merged = {**data, **group, "set": listed}
        out.append(_group_config(merged, path, where))
    return out


def _read_toml(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The definition's table with any ``base`` merged in (:func:`load_definition`); prompts files of a
    base are resolved against the base's folder."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        where = f" (the base of {chain[-1]})" if chain else ""
        raise UserError(f"sweep definition {path}{where} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"sweep definition {path} is not valid TOML: {str(e).splitlines()[0]}") from None
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise UserError(f"{path}: 'base' must be the path of another sweep definition, relative to this one")
    base_path = (path.parent / base).resolve()
    if base_path in {p.resolve() for p in (*chain, path)}:
        raise UserError(f"{path}: 'base' = {base!r} makes a cycle of definitions")
    parent = _read_toml(base_path, (*chain, path))
    keep = data.pop("base_groups", None)
    if keep is not None:
        names = [g.get("name") for g in parent.get("group", [])]
        if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
            raise UserError(f"{path}: 'base_groups' must be a list of the base's group names")
        unknown = [k for k in keep if k not in names]
        if unknown:
            raise UserError(f"{path}: 'base_groups' names {', '.join(map(repr, unknown))}, not groups of {base}")
        parent["group"] = [g for g in parent["group"] if g.get("name") in keep]
    for table in (parent, *parent.get("group", [])):
        if isinstance(table.get("prompts"), str):  # a prompts file stays next to the definition that names it
            table["prompts"] = str(base_path.parent / table["prompts"])
    listed = [v for d in (parent, data) for v in ([d["set"]] if isinstance(d.get("set"), str) else d.get("set", []))]
    merged = {**parent, **data}
    if listed:
        merged["set"] = listed
    return merged


def _group_config(d: dict[str, Any], path: Path, where: str) -> SweepConfig:
    def strings(key: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = d.get(key, default)
        if value is None:
            raise UserError(f"{where}: '{key}' is missing ({DEFINITION_KEYS[key]})")
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{where}: '{key}' must be a list of strings ({DEFINITION_KEYS[key]})")
        return tuple(value)

    prompts = d.get("prompts")
    if isinstance(prompts, str):  # a prompts file next to the definition
        prompts = read_prompts(path.parent / prompts)
    else:
        prompts = strings("prompts")
        if not [p for p in prompts if p.strip()]:
            raise UserError(f"{where}: 'prompts' is empty")
    seeds = d.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise UserError(f"{where}: 'seeds' must be a non-empty list of integers")
    budget = d.get("budget", "steps:500")
    if not isinstance(budget, str):
        raise UserError(f'{where}: \'budget\' must be a string such as "steps:500" or "nfe:1000"')
    return SweepConfig(
        prompts=tuple(dict.fromkeys(p.strip() for p in prompts if p.strip())),
        losses=strings("losses"),
        representations=strings("representations", ("gaussians",)),
        priors=strings("priors", ("toy",)),
        seeds=tuple(seeds),
        budget=Budget.parse(budget),
        overrides=strings("set", ()),
    )


def restrict(groups: list[SweepConfig], losses=(), representations=(), priors=()) -> list[SweepConfig]:
    """Keep only the named losses / representations / priors of each group (empty: keep all);
    groups left empty are dropped. ``UserError`` when nothing is left."""
    from sdbench import registry

    def keep(names: tuple[str, ...], only, reg) -> tuple[str, ...]:
        if not only:
            return names
        wanted = set(expand_names(tuple(only), reg)) if reg is not None else set(only)
        expanded = expand_names(names, reg) if reg is not None else list(names)
        return tuple(n for n in expanded if n in wanted)

    out = []
    for g in groups:
        g = dataclasses.replace(
            g,
            losses=keep(g.losses, losses, registry.LOSSES),
            representations=keep(g.representations, representations, registry.REPRESENTATIONS),
            priors=keep(g.priors, priors, None),
        )
        if g.losses and g.representations and g.priors:
            out.append(g)
    if not out:
        raise UserError("no grid point of the sweep definition matches the given --loss/--rep/--prior")
    return out


def expand_names(names: tuple[str, ...], reg) -> list[str]:
    """Comma lists and ``all`` → registered names (canonical), in the given order."""
    result: list[str] = []
    for item in names:
        for name in (n.strip() for n in item.split(",")):
            if not name:
                continue
            for n in reg.names() if name == "all" else [name]:
                canonical = reg.canonical(n)
                if canonical not in result:
                    result.append(canonical)
    if not result:
        raise UserError(f"no {reg.singular} given")
    return result
