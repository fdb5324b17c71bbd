"""Fault points for the launcher's tests, chosen by the environment and never advertised in ``--help``.

``COLOSSAL_SCHED_FAULT`` holds ``;``-separated faults, each ``KIND=STEP[,rank=R][,attempt=A]``
(defaults: rank 0, attempt 0, i.e. only the first torchrun attempt, so a restarted worker does not
die again). Kinds:

* ``exit_at_update=K``: ``os._exit(17)`` just before update ``K`` (an OOM-killed worker).
* ``kill_during_save=K``: SIGKILL after the shards of checkpoint ``K`` are written, before it is published.
* ``pause_at_update=K``: write ``<COLOSSAL_SCHED_FAULT_DIR>/paused.rank<R>`` and wait before update
  ``K`` (``rank=all`` for every rank), so a test can kill the job at a known point, or let it go on
  by creating ``<COLOSSAL_SCHED_FAULT_DIR>/continue``.
* ``stale_listing=K``: this rank's listing of the checkpoint directory shows no checkpoint after
  step ``K`` (a stale network-filesystem listing).
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

ENV = "COLOSSAL_SCHED_FAULT"
DIR_ENV = "COLOSSAL_SCHED_FAULT_DIR"
KINDS = ("exit_at_update", "kill_during_save", "pause_at_update", "stale_listing")


@dataclass(frozen=True)
class Fault:
    kind: str
    step: int
    rank: int | None  # None: every rank
    attempt: int


def parse(text: str | None) -> list[Fault]:
    """The faults in ``text`` (the variable's value); ValueError naming the allowed forms otherwise."""
    faults = []
    for item in filter(None, (part.strip() for part in (text or "").split(";"))):
        fields = dict(f.split("=", 1) for f in item.split(",") if "=" in f)
        kinds = [k for k in fields if k in KINDS]
        if len(kinds) != 1 or set(fields) - {*KINDS, "rank", "attempt"}:
            raise ValueError(f"{ENV}: expected KIND=STEP[,rank=R][,attempt=A] with KIND in {KINDS}, got {item!r}")
        rank = fields.get("rank", "0")
        faults.append(Fault(kinds[0], int(fields[kinds[0]]), None if rank == "all" else int(rank),
                            int(fields.get("attempt", "0"))))
    return faults


class FaultPoints:
    """The faults that apply to this process (its global rank and torchrun restart attempt)."""

    def __init__(self, rank: int) -> None:
        attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        self.rank = rank
        self.faults = [f for f in parse(os.environ.get(ENV)) if f.rank in (None, rank) and f.attempt == attempt]

    def _hits(self, kind: str, step: int) -> bool:
        return any(f.kind == kind and f.step == step for f in self.faults)

    def before_update(self, step: int) -> None:
        if self._hits("exit_at_update", step):
            os._exit(17)
        if self._hits("pause_at_update", step):
            folder = os.environ.get(DIR_ENV, ".")
            with open(os.path.join(folder, f"paused.rank{self.rank}"), "w") as f:
                f.write(str(step))
            while not os.path.exists(os.path.join(folder, "continue")):
                time.sleep(0.05)

    def listing_limit(self) -> int | None:
        """The newest step this rank may see in the checkpoint directory (``stale_listing``), or None."""
        steps = [f.step for f in self.faults if f.kind == "stale_listing"]
        return min(steps) if steps else None

    def during_save(self, step: int):
        """The ``on_written`` callback for :func:`colossal_sched.checkpoint.save_dcp`, or None."""
        if self._hits("kill_during_save", step):
            return lambda: os.kill(os.getpid(), signal.SIGKILL)
        return None
