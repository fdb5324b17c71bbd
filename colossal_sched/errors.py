"""Every error colossal_sched raises on purpose, in one module that imports nothing of the package.

Each is also a ``ValueError`` (or ``RuntimeError`` for collective verdicts) so existing ``except``
clauses keep working.
"""
from __future__ import annotations

from typing import Any

from ._validate import ArgumentTypeError, short


class ScheduleMismatchError(ValueError):
    """A schedule differs from the one it is compared with (a saved state, or another rank's).

    ``fields`` lists ``(name, saved, current)`` for every field that differs.
    """

    def __init__(self, fields: list[tuple[str, Any, Any]], hint: str = "pass strict=False to accept it") -> None:
        self.fields = fields
        shown = fields[:6]  # reprs cut short: the state may be untrusted; the message stays under 1 KiB
        lines = "; ".join(f"{str(name)[:60]}: saved={short(saved, 60)}, current={short(current, 60)}" for name, saved, current in shown)
        more = f"; and {len(fields) - len(shown)} more" if len(fields) > len(shown) else ""
        super().__init__(f"saved scheduler state differs from this scheduler in {len(fields)} field(s): {lines}{more} ({hint})")

    def with_message(self, message: str) -> "ScheduleMismatchError":
        """The same error (same ``fields``) with another message, e.g. naming ranks instead of a saved state."""
        self.args = (message,)
        return self


class MissingInitialLRError(KeyError, ValueError):
    """Resuming with ``last_epoch >= 0`` needs ``initial_lr`` in every param group (torch's rule)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InvalidLRError(ValueError):
    """An lr (or momentum) that is not finite, or is negative, would reach the optimizer; it is not written."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupt, unsafe, or not a scheduler checkpoint."""


class LayoutMismatchError(ValueError):
    """Ranks hold param groups that cannot be matched to the source rank's."""


class LRDivergenceError(RuntimeError):
    """A rank's lr or step differed from the source rank's (``on_divergence="raise"``)."""


class SyncSequenceError(RuntimeError):
    """Ranks' sync calls cannot be paired (a rank skipped or added a call); raised on every rank."""


class ClockMismatchError(RuntimeError):
    """Ranks disagree on the clock: its totals, a skipped update, or what their data-parallel groups consumed;
    raised on every rank in the same sync."""


class MetricError(ValueError):
    """A metric for a plateau that cannot be judged alike on every rank: missing on some ranks, not finite, given to
    a schedule that does not listen, or ranks whose plateaus decided differently; raised on every rank in the same
    sync, with nothing changed."""


class UsageError(Exception):
    """A bad command-line argument: printed on one line, exit status 2 (``colossal-sched``, launch_scripts)."""


class LRDivergenceWarning(UserWarning):
    """A rank's lr or step differed from the source rank's and was overwritten (``on_divergence="warn"``)."""


class ReplanError(ValueError):
    """A re-plan that cannot be applied (a total not past ``at_step``, a step inside the warmup, a
    schedule given by user functions); nothing is changed."""


class ResumeChoiceError(ValueError):
    """A per-field resume choice that is ambiguous or cannot be applied (a field on both sides or on neither, an
    unknown field, a class change); one line naming the fields. Nothing is changed."""


__all__ = ["ResumeChoiceError", "ArgumentTypeError", "ScheduleMismatchError", "MissingInitialLRError", "InvalidLRError", "CheckpointError",
           "LayoutMismatchError", "LRDivergenceError", "LRDivergenceWarning", "ReplanError", "SyncSequenceError",
           "ClockMismatchError", "MetricError", "UsageError"]
