"""Which side wins on a resume, per field: Megatron's ``override_opt_param_scheduler`` /
``use_checkpoint_opt_param_scheduler``, said once and explicitly.

:class:`ResumeChoice` names the fields kept from the checkpoint and those taken from the current run. Progress
(``step``, ``samples``, ``tokens``, ``skipped``) always continues from the checkpoint, as in Megatron (listing it
on the checkpoint side is allowed, on the current side refused: to start over, do not restore). Every schedule field
(each hyperparameter, ``unit``, ``base_lrs``) that differs must be listed on exactly one side.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

from . import _validate as V
from .errors import ResumeChoiceError

PROGRESS = ("step", "samples", "tokens", "skipped")
"""The run's counters: always the checkpoint's (Megatron keeps the saved step and consumed samples too)."""
SCHEDULE_FIELDS = ("unit", "base_lrs")
"""Schedule fields besides the class's hyperparameters."""
SIDES = ("checkpoint", "current")


def _names(side: str, value: Any) -> tuple[str, ...]:
    """A side's fields: a str (comma-separated) or an iterable of strs, in order, without repeats."""
    if isinstance(value, str):
        value = [v for v in value.replace(" ", ",").split(",") if v]
    try:
        names = list(value)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) and 0 < len(n) <= 100 for n in names) or len(names) > 64:
        raise V.ArgumentTypeError(f"on_mismatch {side} must be a list of field names (strs), got {V.short(value)}")
    return tuple(dict.fromkeys(names))


@dataclasses.dataclass(frozen=True)
class ResumeChoice:
    """Per-field resume policy, accepted as ``on_mismatch`` by :func:`~colossal_sched.checkpoint.restore`.

    Args:
        checkpoint (tuple[str, ...]): Fields kept from the checkpoint (progress fields may be listed; they always are).
        current (tuple[str, ...]): Fields taken from the scheduler this run built (never a progress field).
        replan (bool): A ``total_steps`` taken from the current run is applied as a re-plan at the saved step
            (default: the lr up to it is the checkpoint's, bit for bit, and continues from its value there); False
            swaps it in as Megatron does (the new schedule evaluated at the saved step: the lr may jump).

    A field on both sides, a progress field on the current side or a name that is not a str is refused here; an
    unknown name, a differing field on neither side and a class change when the schedules are compared.
    """

    checkpoint: tuple[str, ...] = ()
    current: tuple[str, ...] = ()
    replan: bool = True

    def __post_init__(self) -> None:
        for side in SIDES:
            object.__setattr__(self, side, _names(side, getattr(self, side)))
        V.boolean("replan", self.replan)
        if both := [n for n in self.checkpoint if n in self.current]:
            raise ResumeChoiceError(f"on_mismatch: {', '.join(both)} listed on both sides (checkpoint and current); "
                                    "list each field on one side")
        if progress := [n for n in self.current if n in PROGRESS]:
            raise ResumeChoiceError(f"on_mismatch: {', '.join(progress)} cannot be taken from the current run: progress "
                                    f"({', '.join(PROGRESS)}) always continues from the checkpoint; to start over, do not restore")

    @classmethod
    def of(cls, value: Any) -> "ResumeChoice":
        """A choice from a :class:`ResumeChoice`, a dict ``{"checkpoint": [...], "current": [...], "replan": bool}``
        or :meth:`parse`'s text."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, Mapping):
            if unknown := [k for k in value if k not in (*SIDES, "replan")]:
                raise ResumeChoiceError(f"on_mismatch: unknown key(s) {V.short(unknown)}; allowed: checkpoint, current, replan")
            return cls(**value)
        raise V.ArgumentTypeError("on_mismatch must be 'raise', 'use_checkpoint', 'use_current', a ResumeChoice or a dict "
                                  f"of checkpoint/current field lists, got {type(value).__name__}")

    @classmethod
    def parse(cls, text: str) -> "ResumeChoice":
        """``"checkpoint=step,samples;current=total_steps"`` (parts separated by ``;`` or ``/``; ``swap`` for
        ``replan=False``), as ``--on-mismatch`` takes it."""
        sides: dict[str, Any] = {}
        for part in (p.strip() for p in text.replace("/", ";").split(";")):
            if part == "swap":
                sides["replan"] = False
                continue
            key, eq, names = part.partition("=")
            if not eq or key.strip() not in SIDES or key.strip() in sides:
                raise ResumeChoiceError(f"on_mismatch: {part!r} must be checkpoint=FIELD,... or current=FIELD,... (each "
                                        "once) or swap, e.g. 'checkpoint=step,samples;current=total_steps'")
            sides[key.strip()] = names
        return cls(**sides)

    def split(self, diffs: Iterable[tuple[str, Any, Any]], allowed: Iterable[str]) -> tuple[list, list]:
        """``(kept, overridden)``: the differing fields ``(name, saved, current)`` each side takes. Refuses a name not
        in ``allowed`` (listing them), a class change, and a differing field listed on neither side."""
        allowed = [*PROGRESS, *SCHEDULE_FIELDS, *(a for a in allowed if a not in SCHEDULE_FIELDS)]
        if unknown := [n for n in (*self.checkpoint, *self.current) if n not in allowed]:
            raise ResumeChoiceError(f"on_mismatch: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        diffs = list(diffs)
        for name, saved, current in diffs:
            if name == "class" or name not in allowed:
                raise ResumeChoiceError(
                    f"on_mismatch: per-field choices need the same schedule on both sides, but {name} differs "
                    f"({V.short(saved, 80)} in the checkpoint, {V.short(current, 80)} now); pass 'use_checkpoint' or 'use_current'")
        if neither := [d for d in diffs if d[0] not in self.checkpoint and d[0] not in self.current]:
            listed = ", ".join(f"{n} ({V.short(s, 60)} -> {V.short(c, 60)})" for n, s, c in neither)
            raise ResumeChoiceError(f"on_mismatch: {listed} differ(s) but is listed on neither side; add each to "
                                    "checkpoint or current")
        return [d for d in diffs if d[0] in self.checkpoint], [d for d in diffs if d[0] in self.current]


def describe(record: Mapping[str, Any]) -> str:
    """One line of a ``resumed`` record: what was kept and what the current run overrode."""
    kept = ", ".join(map(str, record.get("kept") or [])) or "nothing"
    over = ", ".join(f"{o[0]} {V.short(o[1], 60)} -> {V.short(o[2], 60)}" if isinstance(o, (list, tuple)) and len(o) == 3
                     else V.short(o, 80) for o in record.get("overridden") or []) or "nothing"
    how = f" ({record['how']})" if record.get("how") else ""
    return (f"resumed at step {record.get('step')}: kept from checkpoint: {kept}; "
            f"overridden by the current run{how}: {over}")


__all__ = ["ResumeChoice", "ResumeChoiceError", "PROGRESS", "SCHEDULE_FIELDS", "describe"]
