"""The clock: how far a run has progressed, exactly, in the unit its schedule counts.

A schedule is a function of one count (:attr:`ClosedFormLR.unit <colossal_sched.base.ClosedFormLR.unit>`):
optimizer updates (the default), consumed samples, or consumed tokens. A hook owns a :class:`Clock` and
advances it after every update by what the update consumed (summed over the data-parallel ranks) unless the
update was skipped; the schedule's position is :meth:`Clock.position`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from . import _validate as V

UNITS = ("updates", "samples", "tokens")
MAX_COUNT = V.MAX_STEP
"""The largest count, ``2**62``: a position of the schedule (a step); counters are exact int64 (they travel in the
sync's int64 row, whose sums cannot wrap below it, and are saved as JSON ints)."""


def unit(name: str, value: Any) -> str:
    """``value`` as a clock unit: one of :data:`UNITS`."""
    return V.choice(name, value, UNITS)


def count(name: str, value: Any) -> int:
    """``value`` as a counter: a step (:func:`colossal_sched._validate.step`, an int in ``[0, 2**62]``); None is 0."""
    return 0 if value is None else V.step(name, value)


@dataclasses.dataclass(frozen=True)
class Clock:
    """What a run has consumed before its next update: exact counters, saved with the hook's state.

    Args:
        samples (int): Samples consumed by the applied updates (every dp rank's share summed).
        tokens (int): Tokens consumed likewise.
        skipped (int): Updates skipped (fp16/bf16 overflow): they advance neither the updates count nor the others.
    """

    samples: int = 0
    tokens: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, count(field.name, getattr(self, field.name)))

    def position(self, unit: str, global_step: int) -> int:
        """The schedule's position before update ``global_step``: updates applied (``global_step - skipped``),
        samples or tokens consumed."""
        if unit == "updates":
            return global_step - self.skipped if global_step >= self.skipped else 0
        return self.samples if unit == "samples" else self.tokens

    def advanced(self, samples: int, tokens: int, skipped: bool) -> "Clock":
        """The clock after an update that consumed ``samples`` and ``tokens``, or, ``skipped``, one that did not
        count; :class:`ValueError` naming the counter where a total would pass ``2**62``."""
        totals = (self.samples, self.tokens, self.skipped + 1) if skipped else (
            self.samples + samples, self.tokens + tokens, self.skipped)
        for name, total in zip(("samples", "tokens"), totals):
            if total > MAX_COUNT:
                raise ValueError(f"{name}: the consumed total would be {total}, more than a count can be (2**62)")
        out = object.__new__(Clock)  # checked above: no __post_init__ (this is every update's path)
        out.__dict__.update(zip(("samples", "tokens", "skipped"), totals))
        return out

    def state_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> "Clock":
        """A clock from :meth:`state_dict`'s form (None: a state saved before clocks, all zero)."""
        if state is None:
            return cls()
        if not isinstance(state, Mapping) or set(state) != {"samples", "tokens", "skipped"} or None in state.values():
            raise ValueError(f"clock state must be a dict of the ints samples, tokens, skipped, got "
                             f"{V.short(dict(state) if isinstance(state, Mapping) else state)}")
        return cls(**{k: count(f"clock {k}", v) for k, v in state.items()})

    @classmethod
    def resumed(cls, state: Mapping[str, Any] | None, unit: str, step: int) -> "Clock":
        """The clock a resume continues: the saved one, else (a state saved without one) the scheduler's own
        step ``step`` counted in ``unit``."""
        if state is not None or unit == "updates":
            return cls.from_state(state)
        return cls(**{unit: max(step, 0)})


__all__ = ["UNITS", "MAX_COUNT", "Clock", "count", "unit"]
