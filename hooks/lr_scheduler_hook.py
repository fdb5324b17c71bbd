"""LRSchedulerHook: the scheduler as a distributed-aware engine hook stepping on the global step."""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Callable

import torch.distributed as dist

from colossal_sched import ClosedFormLR
from colossal_sched import _validate as V
from colossal_sched.clock import Clock, count
from colossal_sched.errors import LayoutMismatchError, LRDivergenceError, MetricError, ReplanError
from colossal_sched.plateau import checked_metric
from colossal_sched.lr_sync import LocalFailure, LRSync, StepRefusal, SyncOptions, layout_problem
from colossal_sched.sync_protocol import MetricRefusal
from colossal_sched.state import read_state

from .base import EngineHook, lr_metric
from .colossalai_compat import unwrap_grad_accum


class LRSchedulerHook(EngineHook):
    r"""Drop-in for ``colossalai.legacy.trainer.hooks.LRSchedulerHook`` that steps on the engine's
    global step counter and broadcasts the rank-0 lr to every data-, pipeline- and tensor-parallel rank.

    The update the engine numbers :math:`n` (the number of updates done before it,
    ``trainer.cur_step`` in the legacy Trainer) always runs with ``lr_at(n)`` (``by_epoch``: with the
    epoch), whatever happened before it: a resume, gradient accumulation, a skipped update, a late attach.

    Args:
        lr_scheduler (ClosedFormLR): A colossal_sched scheduler, or ColossalAI's ``GradAccumLrSchedulerByStep``
            wrapping one (``legacy.initialize`` with ``gradient_accumulation`` :math:`A`): the Trainer's
            micro-batch :math:`k` then runs the update :math:`\lfloor k / A \rfloor`, as ColossalAI's wrapper steps.
        by_epoch (bool): Schedule on the epoch instead of the update, defaults to False.
        store_lr_in_state (bool): Keep the lr in ``trainer.states["metrics"]["train"]["LR"]``, defaults to True.
        priority (int): The Trainer's hook order, defaults to 1.
        sync (bool): Broadcast the source rank's lr when ``torch.distributed`` is initialised, defaults to True.
        group: Ranks to sync: None (world), a ProcessGroup, a DeviceMesh, a ProcessGroupMesh or a plugin.
        sync_every (int): Sync on every ``sync_every``-th new global step given (the first included), so ranks at
            different steps still sync together; the others compute locally, defaults to 1.
        on_divergence (str): ``"fix"``, ``"warn"`` or ``"raise"`` (see :class:`~colossal_sched.lr_sync.LRSync`).
        timeout (float): Seconds before a sync with a dead peer raises, defaults to 60.
        overlap (bool): Start each sync in ``step`` and finish it just before the optimizer's next
            ``step()`` (an optimizer step pre-hook), or at the next hook call, so the collective overlaps
            forward and backward. The update still runs with the agreed lr and every refusal still reaches
            every rank (raised by ``optimizer.step()``); ``step`` then returns this rank's own lrs. Defaults to False.
        writer: A ``torch.utils.tensorboard.SummaryWriter`` (or anything with ``add_scalar``) that
            gets ``lr/<group>`` and ``momentum/<group>`` at every new global step, on rank 0 only.
        log_fn (callable): Called as ``log_fn(global_step, {"lr/<group>": value, ...})`` likewise.
        dp_group: This rank's data-parallel group (a ProcessGroup or 1-D DeviceMesh), whose ranks' shares of
            ``samples``/``tokens`` add up and whose metrics are reduced; None: ``group``'s ``dp`` group (a plugin's,
            a mesh's ``"dp"`` dimension) where it has one, else every rank of ``group``.
        metric_op (str): How ``step(..., metric=)`` values of the source rank's dp group make one: ``"mean"``,
            ``"sum"``, ``"min"`` or ``"max"``, defaults to ``"mean"``.
        nonfinite_metric (str): A NaN or infinite metric is ``"refuse"``-d on every rank, or every rank ``"skip"``-s
            that observation (with a warning), defaults to ``"refuse"``.

    **The clock.** The schedule counts what its :attr:`~colossal_sched.ClosedFormLR.unit` says: updates (the
    default), samples or tokens (``scheduler.counting("samples")``). The hook keeps a :class:`~colossal_sched.clock.Clock`
    (saved in its state): :meth:`step` is told what the updates since the last new step consumed and whether they
    were skipped, and the update numbered ``global_step`` runs with the lr at the clock's position then.

    The lr sync's side group and a sync in flight are torn down at interpreter exit by themselves; :meth:`close`
    (or ``with LRSchedulerHook(...) as hook:``) ends the sync earlier, its group still destroyed at exit.
    """

    def __init__(self, lr_scheduler: ClosedFormLR, by_epoch: bool = False, store_lr_in_state: bool = True,
                 priority: int = 1, *, sync: bool = True, group: Any = None, sync_every: int = 1,
                 on_divergence: str = "fix", timeout: float = 60.0, overlap: bool = False, writer: Any = None,
                 log_fn: Callable[[int, dict[str, float]], None] | None = None, dp_group: Any = None,
                 metric_op: str = "mean", nonfinite_metric: str = "refuse") -> None:
        super().__init__(priority=priority)
        # ColossalAI's GradAccumLrSchedulerByStep (legacy initialize with gradient_accumulation): updates = micro-batches // A
        lr_scheduler, self.accumulate_size = unwrap_grad_accum(lr_scheduler)
        if not isinstance(lr_scheduler, ClosedFormLR):
            raise V.ArgumentTypeError(
                f"lr_scheduler must be a colossal_sched scheduler (ClosedFormLR), got {type(lr_scheduler).__name__}"
            )
        self.lr_scheduler = lr_scheduler
        self.by_epoch = V.boolean("by_epoch", by_epoch)
        self.store_lr_in_state = V.boolean("store_lr_in_state", store_lr_in_state)
        options = SyncOptions(group=group, on_divergence=on_divergence, timeout=timeout, sync_every=sync_every,
                              dp_group=dp_group, metric_op=metric_op, nonfinite_metric=nonfinite_metric)
        self._nonfinite_metric = options.nonfinite_metric
        self.sync_every = options.sync_every
        self.overlap = V.boolean("overlap", overlap)
        self._pre_step: tuple[Any, Any] | None = None  # (optimizer, handle) of the overlap's step pre-hook
        self.global_step = lr_scheduler.last_epoch
        self._clock = Clock.resumed(None, lr_scheduler.unit, lr_scheduler.last_epoch)
        self.resumed: dict[str, Any] | None = None  # what the last resume kept and overrode (checkpoint.restore)
        self._batch: int | None = None  # samples per update, while the schedule counts updates (ramp warning)
        self._warned_share = False
        self._mine = (0, 0)  # this rank's shares in the sync in flight
        self._before: tuple[int, int, Any] | None = None  # the step, global step and request a refused metric puts back
        self._calls = 0  # new steps given since the connection or the last load: every sync_every-th syncs
        self._request: tuple[int, Any, int] | None = None  # (step asked for, scheduler, step it holds): repeats are no-ops
        self._logged_step: int | None = None
        self._logged_disagreements = 0
        if writer is not None and not callable(getattr(writer, "add_scalar", None)):
            raise V.ArgumentTypeError(f"writer must have add_scalar (a SummaryWriter), got {type(writer).__name__}")
        if log_fn is not None and not callable(log_fn):
            raise V.ArgumentTypeError(f"log_fn must be callable, got {type(log_fn).__name__}")
        self.writer, self.log_fn = writer, log_fn
        self.lr_sync: LRSync | None = None
        self._sync_options = options if V.boolean("sync", sync) else None
        if not self._connect():
            problem = layout_problem(lr_scheduler.optimizer)  # checked collectively at connection otherwise
            if problem:
                raise LayoutMismatchError(problem)

    def _connect(self) -> bool:
        """Create the lr sync once torch.distributed is up with more than one rank (a collective:
        every rank reaches it together, at construction or at the first step). Whether it exists."""
        if self._sync_options is not None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            self.lr_sync = LRSync(self.lr_scheduler, self._sync_options)
            self._sync_options = None
        return self.lr_sync is not None

    # ------------------------------------------------------------ the one entry
    def step(self, global_step: int, *, samples: int | None = None, tokens: int | None = None,
             skipped: bool = False, metric: Any = None) -> list[float]:
        """Make the optimizer hold the lr for the update numbered ``global_step``.

        ``samples``, ``tokens`` (this rank's shares; the sync adds them up over the data-parallel group) and
        ``skipped`` (e.g. :class:`hooks.SkippedUpdates`) describe the update(s) since the last new step: the
        clock advances by them, or only counts a skip, and the schedule's position follows (:class:`LRSchedulerHook`).
        ``metric`` (e.g. a validation loss; a schedule ending in a plateau) is reduced over the data-parallel group in
        the same sync (``metric_op``) and observed by every rank after the step (:meth:`PhasedLR.observe`).
        Idempotent: calling it again with the same step (gradient accumulation) changes nothing and issues no
        collective. Every ``sync_every``-th new step (the first included) every rank agrees with the source rank in
        one collective (see :class:`~colossal_sched.lr_sync.LRSync`), the clock included; a rank fixed to the
        source's step then holds it. A step refused here (invalid, or a scheduler that cannot step to it) is
        refused on every rank, in this rank's next sync. Returns the lrs now in the optimizer.
        """
        s = self.lr_scheduler
        self.settle()
        if self._sync_options is not None:
            self._connect()
        try:
            global_step = V.step("global_step", global_step)
            report = (count("samples", samples), count("tokens", tokens), V.boolean("skipped", skipped))
            repeat = self._is_repeat(global_step)
            if report[2] and self._request is None:
                raise ValueError("skipped says the update before global_step was skipped; the first call after the "
                                 "hook's construction or a load has no update before it")
            if repeat and any(report):
                raise ValueError(f"samples/tokens/skipped describe the update(s) before a new global_step; step "
                                 f"{global_step} repeats the last call (give them once, with the step that follows them)")
            synced = self.lr_sync is not None and self._calls % self.sync_every == 0
            if self.lr_sync is not None and self.sync_every > 1 and (report[0] or report[1]):
                raise ValueError(f"samples/tokens are this rank's share, added up in every sync: they need "
                                 f"sync_every=1, got sync_every={self.sync_every}")
            clock = self._clock if synced else self._clock.advanced(*report)
        except (TypeError, ValueError) as e:
            self._refuse(StepRefusal(str(e)))
            raise
        metric, refusal = (None, None) if metric is None else self._metric(metric, global_step, synced and not repeat)
        if repeat:
            return s.get_last_lr()
        target = clock.position(s.unit, global_step) - (report[2] if synced else 0)
        if synced and s.unit != "updates":
            target = s.last_epoch  # known once the sync has added up the shares
        self._before = (s.last_epoch, self.global_step, self._request)  # what a refused metric puts back
        if target != s.last_epoch:
            try:
                s.step_to(target)
            except Exception as e:
                self._refuse(LocalFailure(f"{type(e).__name__}: {e}"))
                raise
        self.global_step, self._clock = global_step, clock
        self._mine = (1, 1) if self._request is None else report[:2]  # the first call reports no update
        self._request = (global_step, s, s.last_epoch)
        self._calls += 1
        if synced:
            self.lr_sync.sync(s, global_step, async_op=True, progress=self._progress(report), metric=metric, refusal=refusal)
            if self.overlap:
                self._finish_before_optimizer_step(s.optimizer)
                return s.get_last_lr()
            self.settle()
            return s.get_last_lr()
        self._watch_batch(report[0], report[2], self._mine)
        if metric is not None:
            self._observe(metric)
        if self.writer is not None or self.log_fn is not None:
            self._log(global_step)
        return s.get_last_lr()

    def _metric(self, metric: Any, global_step: int, synced: bool) -> tuple[float | None, Exception | None]:
        """``(value, None)`` to send (None: no metric), or ``(None, refusal)`` (:func:`~colossal_sched.plateau.
        checked_metric`'s, or a step without a sync: a repeat, or not a ``sync_every``-th). Without a sync it raises at
        once, nothing changed; else the refusal rides this step's sync, or the next (every rank raises there)."""
        try:
            value = checked_metric(self.lr_scheduler, metric, self._nonfinite_metric)
            if value is not None and self.lr_sync is not None and not synced:
                raise MetricError(f"metric is observed in a sync, and step {global_step} has none (a repeated step, or "
                                  f"sync_every={self.sync_every}): give it with a new step that syncs")
            return value, None
        except MetricError as e:
            if self.lr_sync is None:
                raise
            if not synced:  # no collective at this call: the peers hear of it in the next sync
                self.lr_sync.defer(MetricRefusal(str(e)))
            return None, MetricRefusal(str(e))

    def _observe(self, metric: float | None) -> None:
        """Observe an agreed metric (or, without a sync, this rank's); a non-finite one here is skipped (``"skip"``)."""
        if metric is not None and not math.isfinite(metric):
            self._warn(f"a metric is not finite ({metric} here, or on another rank): every rank skips this observation "
                       "(nonfinite_metric='skip')")
        elif metric is not None:
            self.lr_scheduler.observe(metric)

    @property
    def clock(self) -> Clock:
        """What the run has consumed before its next update (a sync in flight, ``overlap``, is finished first: the
        next batch of a ramp reads the agreed count)."""
        self.settle()
        return self._clock

    @clock.setter
    def clock(self, value: Clock) -> None:
        self._clock = value

    def refuse(self, error: Exception) -> None:
        """Tell every rank of the sync that this rank refuses what they do together (e.g. a restore it cannot
        apply): each raises in the sync it is in, or its next one. Call it, then raise ``error`` here."""
        try:
            self._refuse(LocalFailure(f"{type(error).__name__}: {error}"))
        except RuntimeError:  # the group's verdict on it, which the peers raise; the caller raises ``error`` here
            pass

    def _progress(self, report: tuple[int, int, bool] = (0, 0, False)) -> tuple[int, ...]:
        """The clock's words of this rank's sync row: its totals, then the update's skip flag and shares (``report``)."""
        c = self._clock
        return c.samples, c.tokens, c.skipped, int(report[2]), report[0], report[1]

    def _position(self) -> int:
        """Where the schedule stands before the update ``global_step``: the clock in the schedule's unit."""
        return self._clock.position(self.lr_scheduler.unit, self.global_step)

    def _watch_batch(self, samples: int, skipped: bool, mine: tuple[int, int]) -> None:
        """Warn once where the samples per update change (a batch-size ramp) while the schedule counts updates, or
        where the schedule counts samples (tokens) and this rank gave none for an update (``mine``: its shares)."""
        unit = self.lr_scheduler.unit
        if unit != "updates" and not skipped and not mine[unit == "tokens"] and not self._warned_share:
            self._warned_share = True
            self._warn(f"{type(self.lr_scheduler).__name__} counts {unit}, but this rank gave no {unit}= for the "
                       f"update before step {self.global_step}: its schedule does not move for it")
        if skipped or not samples or unit != "updates" or self._batch == -1:
            return
        if self._batch is not None and samples != self._batch:
            what = (f"the samples per update changed from {self._batch} to {samples} (a batch-size ramp?) while "
                    f"{type(self.lr_scheduler).__name__} counts updates: its warmup and decay end at other sample counts "
                    "than a run at the full batch; declare the lengths in samples: scheduler.counting('samples')")
            self._batch = -1
            self._warn(what)
            return
        self._batch = samples

    def _warn(self, what: str) -> None:
        try:
            warnings.warn(what, UserWarning, stacklevel=5)
        except Warning:  # warnings as errors: raising here alone would leave the peers waiting
            if self.lr_sync is None:
                raise
            self.lr_sync.defer(LocalFailure(what))

    def _is_repeat(self, global_step: int) -> bool:
        """Whether ``global_step`` repeats the last call: the step asked for last time, or the one a fix left
        this rank holding when it was ahead of the source. (Behind the source, the fixed step is this rank's
        next update, so it is a new step: a lagging counter is fixed at every sync, as a leading one is.)"""
        s, request = self.lr_scheduler, self._request
        if request is None or request[1:] != (s, s.last_epoch) or self._position() != s.last_epoch:
            return False
        return global_step == request[0] or global_step == self.global_step <= request[0]

    def _asked(self) -> int:
        """The step this rank last asked for (what its syncs compare with its previous sync's)."""
        return self._request[0] if self._request is not None else self.global_step

    def _refuse(self, refusal: Exception) -> None:
        """Tell the group this rank refuses its step: every rank raises in the same sync (its peers' next one)."""
        if self.lr_sync is not None:
            self._calls += 1
            self.lr_sync.sync(self.lr_scheduler, self._asked(), refusal=refusal, progress=self._progress())

    def settle(self) -> None:
        """Finish the pending sync, if any (``overlap``): wait for the collective and apply the group's verdict.

        Called before the optimizer's step, at the next hook call, and before a re-plan or a save; a refusal
        raises here, on every rank."""
        b = self.lr_sync
        if b is None or not b.pending:
            return
        s = self.lr_scheduler
        try:
            self.global_step = b.finish(s)
        except MetricError:  # refused on every rank: each puts back the step it took for it, nothing observed
            before, self._before = self._before, None
            if before is not None and before[0] >= 0 and s.last_epoch != before[0]:
                s.step_to(before[0])
            if before is not None:
                self.global_step, self._request = before[1], before[2]
            raise
        except LRDivergenceError:
            if self.writer is not None or self.log_fn is not None:
                self._log(self._request[0])  # the refused disagreement is logged too (rank 0)
            raise
        samples, tokens, skip = b.agreed
        if samples or tokens or skip:
            self._clock = self._clock.advanced(samples, tokens, skip)  # checked by the sync: never raises here
        position = self._position()
        if position != s.last_epoch:
            s.step_to(position)
        self._observe(b.metric)
        self._request = (self._request[0], s, s.last_epoch)
        self._watch_batch(samples, skip, self._mine)
        if self.writer is not None or self.log_fn is not None:
            self._log(self.global_step)

    def _finish_before_optimizer_step(self, optimizer: Any) -> None:
        """Register (once per optimizer) the step pre-hook that settles the pending sync."""
        if self._pre_step is None or self._pre_step[0] is not optimizer:
            if self._pre_step is not None:
                self._pre_step[1].remove()
            self._pre_step = (optimizer, optimizer.register_step_pre_hook(lambda *_: self.settle()))

    def replan(self, total_steps: int, at_step: int | None = None) -> None:
        """Re-plan the running schedule (``lr_scheduler.replan``) on every rank in the same sync.

        Every rank calls it at the same point; a refusal on any rank (see the scheduler's ``replan``)
        is raised on every rank and no rank's schedule changes. A rank that does not call it is a
        schedule mismatch at its next sync.
        """
        s = self.lr_scheduler
        self.settle()
        if not callable(getattr(s, "replan", None)):
            raise ReplanError(f"{type(s).__name__} cannot be re-planned (it has no replan())")
        refusal: Exception | None = None
        try:  # any failure here is a refusal told to the group, never raised on this rank alone
            before = s.state_dict()
            s.replan(total_steps, at_step)
        except Exception as e:
            refusal = e
        if self.lr_sync is None:
            if refusal is not None:
                raise refusal
        else:
            try:
                self.global_step = self.lr_sync.sync(s, self._asked(), refusal=refusal, progress=self._progress())
            except Exception:  # refused (or another verdict) on every rank: no rank keeps its re-plan
                if refusal is None:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        s.load_state_dict(before)
                raise
        self._request = (self._asked(), s, s.last_epoch)

    def close(self) -> None:
        """End the lr sync (wait for a sync in flight; its group is destroyed at exit, see :meth:`LRSync.close`) and
        remove the overlap's optimizer pre-hook. Idempotent; also runs at interpreter exit. No sync afterwards."""
        if self._pre_step is not None:
            self._pre_step[1].remove()
            self._pre_step = None
        if self.lr_sync is not None:
            self.lr_sync.close()
        self._sync_options = None

    def __enter__(self) -> "LRSchedulerHook":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------- what the sync saw
    @property
    def fixes(self) -> int:
        """Syncs in which this rank was off the source and took its step and lrs."""
        return self.lr_sync.fixes if self.lr_sync is not None else 0

    @property
    def warnings(self) -> int:
        """Syncs in which this rank was off the source and warned (``on_divergence="warn"``)."""
        return self.lr_sync.warnings if self.lr_sync is not None else 0

    @property
    def disagreements(self) -> int:
        """Syncs in which any rank of the group was off the source (the same on every rank)."""
        return self.lr_sync.disagreements if self.lr_sync is not None else 0

    @property
    def last_disagreement(self) -> dict[str, Any] | None:
        """The last disagreement in the group: ``{"sync", "source", "ranks", "steps", "lrs", "action", "message"}``."""
        d = self.lr_sync.last_disagreement if self.lr_sync is not None else None
        return None if d is None else dataclasses.asdict(d)

    def scalars(self) -> dict[str, float]:
        """``{"lr/<group>": lr, "momentum/<group>": momentum}`` now in the optimizer (group: its name or index)."""
        s = self.lr_scheduler
        names = [g.get("name") or f"group{i}" for i, g in enumerate(s.optimizer.param_groups)]
        out = {f"lr/{n}": lr for n, lr in zip(names, s.get_last_lr())}
        momenta = s.momentum_at(s.last_epoch)
        if momenta is not None:
            out.update({f"momentum/{n}": m for n, m in zip(names, momenta)})
        return out

    def _log(self, global_step: int) -> None:
        """Rank 0 logs the lrs at every new global step, and ``sync/*`` at each new disagreement. Where
        ``writer``/``log_fn`` raises in a synced run, rank 0 warns and every rank raises at the next sync
        (rank 0 raising alone would leave its peers waiting in their next collective)."""
        try:
            self._emit(global_step)
        except Exception as e:
            if self.lr_sync is None:
                raise
            what = f"writer/log_fn failed at step {global_step}: {type(e).__name__}: {e}"
            self.lr_sync.defer(LocalFailure(what))
            try:
                warnings.warn(f"{what}; every rank raises at the next sync", RuntimeWarning, stacklevel=3)
            except Warning:  # warnings as errors: raising here alone would leave the peers waiting
                pass

    def _emit(self, global_step: int) -> None:
        fresh = self.disagreements != self._logged_disagreements
        if global_step == self._logged_step and not fresh:
            return
        self._logged_step, self._logged_disagreements = global_step, self.disagreements
        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return
        values = self.scalars()
        d = self.last_disagreement
        if fresh and d is not None:
            values.update({"sync/disagreements": float(self.disagreements), "sync/off_ranks": float(len(d["ranks"])),
                           "sync/first_off_rank": float(d["ranks"][0]),
                           "sync/first_off_step": float(d["steps"][d["ranks"][0]]),
                           "sync/source_step": float(d["steps"][d["source"]])})
        if self.writer is not None:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, global_step)
        if self.log_fn is not None:
            self.log_fn(global_step, values)

    # ------------------------------------------------------- legacy Trainer API
    def after_hook_is_attached(self, trainer: Any) -> None:
        if self.store_lr_in_state:
            self.init_runner_states(trainer, "metrics", dict(train={}, test={}))
            trainer.states["metrics"]["train"]["LR"] = lr_metric(self.by_epoch, self.lr_scheduler.get_last_lr()[0])

    def before_train_epoch(self, trainer: Any) -> None:
        if self.by_epoch:  # ColossalAI's GradAccumLrSchedulerByStep also steps once every A epochs
            self.step(trainer.cur_epoch // self.accumulate_size)

    def after_train_epoch(self, trainer: Any) -> None:
        if self.by_epoch:
            self._record(trainer, self.step((trainer.cur_epoch + 1) // self.accumulate_size))

    def before_train_iter(self, trainer: Any) -> None:
        if not self.by_epoch:
            self.step(trainer.cur_step // self.accumulate_size)

    def after_train_iter(self, trainer: Any, output: Any, label: Any, loss: Any) -> None:
        if not self.by_epoch:
            self._record(trainer, self.step((trainer.cur_step + 1) // self.accumulate_size))

    def _record(self, trainer: Any, lrs: list[float]) -> None:
        if self.store_lr_in_state:
            trainer.states["metrics"]["train"]["LR"].update(lrs[0])

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, str]:
        """The scheduler's state, the global step and the world layout as one JSON entry
        (:func:`colossal_sched.checkpoint.pack_state`; one DCP record, about 1.6 KiB)."""
        from colossal_sched.checkpoint import pack_state  # imports torch.distributed.checkpoint: only when used

        self.settle()
        return pack_state(self.lr_scheduler.state_dict(), self.global_step, clock=self._clock.state_dict(),
                          resumed=self.resumed)

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        """Restore a hook state, or a bare scheduler state (e.g. from ColossalAI's ``booster.save_lr_scheduler``)."""
        self.settle()
        saved = read_state(state_dict)  # read once: the scheduler takes the checked value as it is
        self.lr_scheduler.load_state_dict(saved, strict=strict)
        s, step = self.lr_scheduler, saved.global_step
        self.global_step = V.step("global_step", s.last_epoch if step is None else step)
        self._clock = Clock.resumed(saved.clock, s.unit, s.last_epoch)
        self.resumed = saved.resumed_record()
        s.step_to(self._position())
        self._request = None
        self._calls = 0
        if self.lr_sync is not None:
            self.lr_sync.reset_sequence()

