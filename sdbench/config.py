"""Typed dataclass configs: serialise, rebuild, and override fields from ``KEY=VALUE`` strings.

Every plugin class carries a frozen ``Config`` dataclass; the resolved configs of a trial go
into its ``result.json`` and come back out with :func:`from_dict`. ``--set loss.cfg_scale=7.5``
is applied with :func:`override`, which parses the value by the field's annotated type and
rejects unknown keys with the list of valid ones, and NaN or infinite numbers.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from typing import Any, Literal, TypeVar, Union

from sdbench.errors import UserError

C = TypeVar("C")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) dataclass; tuples become lists."""

    def convert(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: convert(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {str(k): convert(x) for k, x in v.items()}
        return v

    return convert(cfg)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Turn ``value`` (already JSON-decoded, or a raw string) into an instance of type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"{where}: {value!r} is not a valid {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("()[] ").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ValueError(f"{where}: {value!r} is not true/false")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(f"{where}: {value!r} is not an integer")
        if isinstance(value, float):
            if value.is_integer():
                return int(value)
            raise ValueError(f"{where}: {value!r} is not an integer")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {value!r} is not an integer") from None
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"{where}: {value!r} is not a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {value!r} is not a number") from None
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: {value!r} is not a string")
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise TypeError(f"{where}: unsupported config type {tp!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def from_dict(cls: type[C], data: dict[str, Any], where: str = "") -> C:
    """Rebuild a config dataclass from :func:`to_dict` output; unknown keys are an error."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - names
    if unknown:
        raise UserError(_unknown_key_message(sorted(unknown)[0], names, where or cls.__name__))
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def _unknown_key_message(key: str, names: set[str], where: str) -> str:
    close = difflib.get_close_matches(key, sorted(names), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown config key {where + '.' if where else ''}{key}{hint} (valid: {', '.join(sorted(names))})"


def parse_value(text: str) -> Any:
    """Decode a ``--set`` value: JSON when it parses (numbers, true/false, null, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if text.lower() in ("none", "null"):
            return None
        return text


def override(cfg: C, key: str, value: Any, where: str = "") -> C:
    """A copy of ``cfg`` with the (dotted) field ``key`` set to ``value``, parsed by the field's type."""
    head, _, rest = key.partition(".")
    hints = _hints(type(cfg))
    names = {f.name for f in dataclasses.fields(cfg)}
    label = where or type(cfg).__qualname__
    if head not in names:
        raise UserError(_unknown_key_message(head, names, label))
    current = getattr(cfg, head)
    if rest:
        if not dataclasses.is_dataclass(current):
            raise UserError(f"config key {label}.{head} has no sub-keys")
        new = override(current, rest, value, f"{label}.{head}")
    else:
        raw = parse_value(value) if isinstance(value, str) else value
        tp = hints[head]
        if isinstance(raw, (int, float)) and not isinstance(raw, bool) and _accepts_str_only(tp):
            raw = value  # e.g. a prompt field set to "3"
        try:
            new = _coerce(tp, raw, f"{label}.{head}")
        except (ValueError, TypeError) as e:
            where, msg = f"{label}.{head}", str(e)
            msg = msg.removeprefix(f"{where}: ")  # _coerce names the key itself; say it once
            raise UserError(f"bad value for {where}: {msg}") from None
        if not _finite(new):
            raise UserError(f"bad value for {label}.{head}: {value!r} is not a finite number")
    return dataclasses.replace(cfg, **{head: new})


def _finite(value: Any) -> bool:
    """No NaN or ±inf anywhere in ``value`` (a number, a tuple of them, a nested config)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(_finite(getattr(value, f.name)) for f in dataclasses.fields(value))
    return True


def _accepts_str_only(tp: Any) -> bool:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return tp is str or (typing.get_origin(tp) in (Union, types.UnionType) and args == [str])


def field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under dataclass fields (``x: int = 1`` followed by ``\"\"\"doc\"\"\"``)."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for prev, node in zip(body, body[1:]):
        if (
            isinstance(prev, ast.AnnAssign)
            and isinstance(prev.target, ast.Name)
            and isinstance(node, ast.Expr)
            and isinstance(getattr(node, "value", None), ast.Constant)
            and isinstance(node.value.value, str)
        ):
            docs[prev.target.id] = " ".join(node.value.value.split())
    return docs


@dataclasses.dataclass(frozen=True)
class StepSchedule:
    """The fields of a plugin config that count optimisation steps, and the run length their defaults
    were written for.

    A config declares it as a class attribute, ``step_schedule: ClassVar[StepSchedule]``. A trial of
    ``N`` steps then scales each listed field from its value ``v`` to ``max(1, ⌊v · N / steps⌋)``
    (:func:`scale_steps`): a paper's schedule keeps its shape (the same fraction of the run) whatever
    the budget, and a trial at the paper's own length runs the paper's values. A field set explicitly
    (``--set``) keeps its value; a field that is 0 stays 0.
    """

    steps: int
    """The run length the defaults belong to (e.g. 25 000 for ProlificDreamer's t annealing)."""
    fields: tuple[str, ...]
    """Dotted field names holding step counts (``anneal_steps``, ``t_max.to_step``); a field below a
    None (a schedule switched off) is skipped."""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"StepSchedule.steps must be at least 1, got {self.steps}")


def step_schedule(cfg: Any) -> StepSchedule | None:
    """The :class:`StepSchedule` a config class declares (``step_schedule`` class attribute), or None."""
    schedule = getattr(type(cfg), "step_schedule", None)
    if schedule is not None and not isinstance(schedule, StepSchedule):
        raise TypeError(f"{type(cfg).__qualname__}.step_schedule must be a StepSchedule, got {schedule!r}")
    return schedule


def _get_path(cfg: Any, path: str) -> Any:
    for part in path.split("."):
        if cfg is None:
            return None
        cfg = getattr(cfg, part)
    return cfg


def schedule_values(cfg: Any) -> dict[str, int]:
    """The current value of each step field of ``cfg``'s :class:`StepSchedule` (those not below a None)."""
    schedule = step_schedule(cfg)
    if schedule is None:
        return {}
    values = {path: _get_path(cfg, path) for path in schedule.fields}
    return {path: v for path, v in values.items() if v is not None}


def scale_steps(cfg: C, steps: int, keep: tuple[str, ...] | list[str] | set[str] = ()) -> C:
    """``cfg`` with its step fields scaled to a ``steps``-step run (see :class:`StepSchedule`).

    ``keep``: dotted keys set explicitly; a step field equal to one of them, or below one (``t_max``
    set as a whole), keeps its value. A config without a schedule is returned unchanged."""
    schedule = step_schedule(cfg)
    if schedule is None:
        return cfg
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    for path, value in schedule_values(cfg).items():
        if any(path == k or path.startswith(k + ".") for k in keep):
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{type(cfg).__qualname__}.{path} is in its step_schedule but holds {value!r}, not a step count")
        if value > 0:
            cfg = override(cfg, path, max(1, value * steps // schedule.steps))
    return cfg
