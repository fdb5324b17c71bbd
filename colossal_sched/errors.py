"""Every error colossal_sched raises on purpose, in one module that imports nothing of the package.

Each is also a ``ValueError`` (or ``RuntimeError`` for collective verdicts) so existing ``except``
clauses keep working.
"""
from __future__ import annotations

from typing import Any

from ._validate import ArgumentTypeError


class ScheduleMismatchError(ValueError):
    """A schedule differs from the one it is compared with (a saved state, or another rank's).

    ``fields`` lists ``(name, saved, current)`` for every field that differs.
    """

    def __init__(self, fields: list[tuple[str, Any, Any]], hint: str = "pass strict=False to accept it") -> None:
        self.fields = fields
        lines = "; ".join(f"{name}: saved={saved!r}, current={current!r}" for name, saved, current in fields)
        super().__init__(f"saved scheduler state differs from this scheduler in {len(fields)} field(s): {lines} ({hint})")


class MissingInitialLRError(KeyError, ValueError):
    """Resuming with ``last_epoch >= 0`` needs ``initial_lr`` in every param group (torch's rule)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupt, unsafe, or not a scheduler checkpoint."""


class LayoutMismatchError(ValueError):
    """Ranks hold param groups that cannot be matched to the source rank's."""


class LRDivergenceError(RuntimeError):
    """A rank's lr or step differed from the source rank's (``on_divergence="raise"``)."""


__all__ = ["ArgumentTypeError", "ScheduleMismatchError", "MissingInitialLRError", "CheckpointError",
           "LayoutMismatchError", "LRDivergenceError"]
