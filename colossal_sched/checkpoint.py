"""Scheduler state inside sharded checkpoints (torch.distributed.checkpoint and ColossalAI Booster).

This module holds the file IO and the resume decision: :func:`save_dcp` (agreed and published atomically),
:func:`latest_checkpoint`, :func:`read_dcp_state` (one process, no pickle of code), the Booster JSON
(:func:`save_booster_state` / :func:`load_booster_state`) and :func:`resume` / :func:`restore`. Reading and
checking a state is :func:`colossal_sched.state.read_state`'s; one run per directory is :class:`RunLock`'s.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import warnings
from typing import Any, Callable, Mapping, Union

import torch
import torch.distributed as dist
from torch.distributed.checkpoint import FileSystemWriter
from torch.distributed.checkpoint.api import CheckpointException

from . import _validate as V
from .base import ClosedFormLR
from .rebuild import stand_in_optimizer
from .rollback import unchanged_on_error
from .ckpt_lock import LOCK_FILE, RunLock
from .clock import Clock
from .errors import CheckpointError, ResumeChoiceError, ScheduleMismatchError
from .resume_choice import PROGRESS, ResumeChoice, describe
from .ckpt_agreement import agree, describe_refusals, fingerprint, is_coordinator, share_verdict
from .state import FORMAT_VERSION, HOOK_KEY, MAX_STATE_CHARS, SavedState, group_names, read_state, unpack_state
from .safe_reader import SafeFileSystemReader, SafeLoadPlanner, missing_files, read_metadata_file

log = logging.getLogger("colossal_sched")

ON_MISMATCH = ("raise", "use_checkpoint", "use_current")
OnMismatch = Union[str, ResumeChoice, Mapping[str, Any]]
"""One of :data:`ON_MISMATCH`, a :class:`~colossal_sched.resume_choice.ResumeChoice`, its dict or its text form."""
BOOSTER_FILE = "colossal_sched_lr_scheduler.json"
STEP_DIR = re.compile(r"step_([0-9]{8,})")  # ASCII digits only; matched with fullmatch
_TMP_SUFFIX = ".partial"


# ------------------------------------------------------------------ shared bits
def world_layout(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The world a checkpoint was written from (kept for information; never required to match)."""
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    return {"world_size": world, **(dict(extra) if extra else {})}


def pack_state(scheduler_state: Mapping[str, Any], global_step: int | None, layout: Mapping[str, Any] | None = None,
               clock: Mapping[str, int] | None = None, resumed: Mapping[str, Any] | None = None) -> dict[str, str]:
    """A hook's state as one JSON entry: scheduler state, global step, clock, world layout and the ``resumed``
    record of the last resume that chose between the checkpoint's schedule and the run's (:func:`restore`).

    One entry, because DCP stores every non-tensor leaf as a file record of its own (about 1 KiB
    each): this way the state adds about 1.6 KiB to a checkpoint instead of about 14 KiB.
    """
    return {HOOK_KEY: json.dumps(_payload(scheduler_state, global_step, layout, clock, resumed), allow_nan=False)}


def _payload(scheduler_state: Mapping[str, Any], global_step: int | None, layout: Mapping[str, Any] | None,
             clock: Mapping[str, int] | None = None, resumed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a hook's entry and a Booster JSON file hold (:func:`~colossal_sched.state.read_state` reads both)."""
    out = {"format_version": FORMAT_VERSION, "scheduler": dict(scheduler_state), "global_step": global_step,
           "world_layout": world_layout(layout)}
    if clock is not None:
        out["clock"] = dict(clock)
    return out if resumed is None else {**out, "resumed": dict(resumed)}


# ---------------------------------------------------------------- resume rules
def resume(scheduler: ClosedFormLR, saved: Mapping[str, Any] | SavedState, on_mismatch: OnMismatch = "raise",
           logger: Callable[[str], None] | None = None) -> ClosedFormLR:
    """Continue ``scheduler`` from a saved state; returns the scheduler to train with.

    The saved schedule (class, every hyperparameter, unit, base lrs) is compared with the one the run built.
    Identical: the state is loaded. Different: ``"raise"`` (default) lists each differing field with both
    values; ``"use_checkpoint"`` keeps the checkpoint's schedule, ``"use_current"`` the new one from the
    saved step (logged with both lrs); a :class:`~colossal_sched.resume_choice.ResumeChoice` (or its dict or
    text form) says per field which side wins. The step always continues from the checkpoint. A refusal leaves
    the scheduler and its optimizer as they were.
    """
    return restore(scheduler, saved, on_mismatch, logger)


def _resume(scheduler: ClosedFormLR, saved: SavedState, on_mismatch: OnMismatch, say: Callable[[str], None],
            progress: tuple[str, ...] = ("step",), positioned: bool = False) -> tuple[ClosedFormLR, dict[str, Any] | None]:
    """The scheduler to train with and, where the schedules differed, what was kept (``progress`` first) and what
    overridden (``{"step": ..., "kept": [...], "overridden": [[field, checkpoint, current], ...], "how": ...}``).
    ``positioned``: a hook re-positions the schedule from its saved clock (so a unit taken from the current run
    is meaningful)."""
    state = saved.for_scheduler(scheduler)
    if len(state["base_lrs"]) != len(scheduler.base_lrs):
        raise ScheduleMismatchError(
            [("param groups", len(state["base_lrs"]), len(scheduler.base_lrs))],
            hint="the checkpoint was saved with another number of param groups",
        )
    diffs = scheduler.diff_state(state, with_base_lrs=True)
    step = V.step("last_epoch", max(state["last_epoch"], 0))
    if diffs and on_mismatch == "raise":
        raise ScheduleMismatchError(diffs, hint='pass on_mismatch="use_checkpoint" or "use_current" (or a ResumeChoice per field)')
    if not diffs:
        scheduler._load(state)
        return scheduler, None
    at = step if saved.global_step is None else saved.global_step
    if isinstance(on_mismatch, ResumeChoice):
        return _resume_per_field(scheduler, saved, state, diffs, on_mismatch, say, progress, positioned)
    record = {"step": at, "kept": [*progress, *(n for n, _, _ in diffs)], "overridden": [], "how": "use_checkpoint"}
    fields = ", ".join(f"{n}: {V.short(s, 80)} -> {V.short(c, 80)}" for n, s, c in diffs)
    new = scheduler.lr_at(step)
    if on_mismatch == "use_current":
        old = _saved_lr(saved, state, step, group_names(scheduler.optimizer))
        scheduler.step_to(step)
        decided = callable(getattr(scheduler, "adopt_decisions", None)) and scheduler.adopt_decisions(state)
        kept = [*progress, *(["plateau"] if decided else [])]
        new = scheduler.get_last_lr()
        say(f"resume at step {step}: keeping the current schedule ({fields}); lr {old} (checkpoint) -> {new} (current)")
        return scheduler, {"step": at, "kept": kept, "overridden": [list(d) for d in diffs], "how": "use_current"}
    if state["class"] == type(scheduler).__name__:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the choice is logged below
            scheduler._load(state)
        chosen = scheduler
    else:
        chosen = ClosedFormLR.from_state(saved, scheduler.optimizer)
    old = chosen.lr_at(step) if saved.native and chosen.rebuildable else state.get("last_lr")
    say(f"resume at step {step}: keeping the checkpoint's schedule ({fields}); lr {new} (current) -> {old} (checkpoint)")
    return chosen, record


def _resume_per_field(scheduler: ClosedFormLR, saved: SavedState, state: dict[str, Any], diffs: list[tuple[str, Any, Any]],
                      choice: ResumeChoice, say: Callable[[str], None], progress: tuple[str, ...],
                      positioned: bool) -> tuple[ClosedFormLR, dict[str, Any]]:
    """The checkpoint's schedule with the fields ``choice`` takes from the current run: rebuilt with the merged
    hyperparameters at the saved step (:meth:`ClosedFormLR._load`), a current ``total_steps`` as a re-plan there
    unless ``choice.replan`` is False."""
    kept, over = choice.split(diffs, scheduler.hyperparams)
    names = {n for n, _, _ in over}
    step = V.step("last_epoch", max(state["last_epoch"], 0))
    if "unit" in names and not positioned:
        raise ResumeChoiceError(f"on_mismatch: unit {state.get('unit', 'updates')} -> {scheduler.unit} needs the saved clock "
                                "to place the schedule in the new unit (restore a hook whose checkpoint holds one); "
                                "keep the checkpoint's unit")
    current = scheduler.hyperparameters()
    hp = {**state["hyperparams"], **{n: current[n] for n in names if n in current}}
    merged = {**state, "hyperparams": hp}
    if "unit" in names:  # the saved position, counted in the new unit by the saved clock
        step = merged["last_epoch"] = Clock.from_state(saved.clock).position(scheduler.unit, saved.global_step or step)
    merged["unit"] = scheduler.unit if "unit" in names else state.get("unit", "updates")
    merged["base_lrs"] = list(scheduler.base_lrs) if "base_lrs" in names else state["base_lrs"]
    replan_to = None
    if "total_steps" in names and choice.replan:
        replan_to, hp["total_steps"] = hp["total_steps"], state["hyperparams"]["total_steps"]  # re-planned below
    elif "total_steps" in names and "replans" in state:
        merged["replans"] = [list(r) for r in getattr(scheduler, "replans", [])]  # the saved ones re-fit the old length
    old = _saved_lr(saved, state, step, group_names(scheduler.optimizer))
    sides = f"checkpoint: {', '.join(n for n, _, _ in kept) or '-'}; current: {', '.join(sorted(names))}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the choice is logged below
            scheduler._load(merged)
    except CheckpointError as e:
        raise ResumeChoiceError(f"on_mismatch: the merged schedule ({sides}) does not build: {e}") from None
    how = "swap"
    if replan_to is not None:
        try:
            scheduler.replan(replan_to, at_step=step)
        except ValueError as e:
            raise ResumeChoiceError(f"on_mismatch: total_steps {state['hyperparams']['total_steps']} -> {replan_to} as a "
                                    f"re-plan at step {step}: {e}; pass replan=False ('swap') for Megatron's plain swap") from None
        how = f"re-plan at step {step}"
    record = {"step": step if saved.global_step is None else saved.global_step,
              "kept": [*progress, *(n for n, _, _ in kept)], "overridden": [list(d) for d in over], "how": how}
    say(f"{describe(record)}; lr {old} (checkpoint) -> {scheduler.lr_at(step)} (now)")
    return scheduler, record


def _saved_lr(saved: SavedState, state: dict[str, Any], step: int, names: list[str | None]) -> Any:
    """The checkpoint schedule's lr at ``step`` for the param groups ``names`` (rebuilt on a stand-in
    optimizer where the state holds the schedule), else the saved last lr."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ClosedFormLR.from_state(saved, stand_in_optimizer(state["base_lrs"], names)).lr_at(step)
    except (CheckpointError, ValueError, TypeError):
        return state.get("last_lr")


# ------------------------------------------------------------------------ DCP
class AgreedFileSystemWriter(FileSystemWriter):
    """A ``FileSystemWriter`` whose global planning first checks that every rank is saving the same
    checkpoint: each rank's local plan carries ``(tag, description, refusal or None)``, and the
    coordinator raises :class:`CheckpointError` (which DCP hands to every rank) unless all tags are
    equal and nobody refused. So the agreement rides in ``dcp.save``'s own planning collective."""

    def __init__(self, path: str, tag: Any, description: str, refusal: str | None = None) -> None:
        super().__init__(path)
        self._mine = (tag, description, refusal)

    def prepare_local_plan(self, plan: Any) -> Any:
        if self._mine[2] is None:
            plan = super().prepare_local_plan(plan)  # creates the directory
        return dataclasses.replace(plan, storage_data=self._mine)

    def prepare_global_plan(self, plans: list[Any]) -> list[Any]:
        refusal = describe_refusals("the checkpoint to save", [p.storage_data for p in plans])
        if refusal is not None:
            raise CheckpointError(refusal)
        return super().prepare_global_plan([dataclasses.replace(p, storage_data=None) for p in plans])


def save_dcp(state: dict[str, Any], checkpoint_dir: str, step: int, on_written: Callable[[], None] | None = None, *,
             lock: RunLock | None = None, group: Any = None) -> str:
    """``dcp.save(state)`` into ``checkpoint_dir/step_XXXXXXXX``, agreed by every rank and published atomically
    (README's "Publishing"): the ranks agree on step and directory inside ``dcp.save``'s planning
    (:class:`AgreedFileSystemWriter`), the shards go to ``step_XXXXXXXX.partial``, and the coordinator renames
    it once every storage file its ``.metadata`` names is there; every rank learns the outcome in one
    ``broadcast``. ``on_written`` runs on every rank before the rename (a fault-injection point for tests).
    """
    import torch.distributed.checkpoint as dcp

    step = V.step("step", step)
    if not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise V.ArgumentTypeError(f"checkpoint_dir must be a path, got {V.short(checkpoint_dir)}")
    checkpoint_dir = os.fspath(checkpoint_dir)
    final = os.path.join(checkpoint_dir, f"step_{step:08d}")
    tmp = final + _TMP_SUFFIX
    refusal = None
    if is_coordinator(group):
        try:
            os.makedirs(checkpoint_dir, exist_ok=True)
            links = [p for p in (final, tmp) if os.path.islink(p)]
            if links:
                raise CheckpointError(f"refusing to save into {links[0]}: it is a symbolic link (a checkpoint "
                                      "directory is never followed or removed through a link; remove the link yourself)")
            if lock is not None:
                lock.verify()
            _remove_tree(tmp)
        except (CheckpointError, OSError) as e:
            refusal = str(e)
    writer = AgreedFileSystemWriter(tmp, (step, fingerprint(os.path.normpath(final))), f"step {step} into {final}", refusal)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            metadata = dcp.save(state, storage_writer=writer, process_group=group)  # what it wrote into .metadata
    except (CheckpointError, CheckpointException) as e:
        if refusal is None and os.path.isdir(tmp) and not os.path.islink(tmp) and not os.listdir(tmp):
            os.rmdir(tmp)  # created by this rank's plan, never written: leave nothing behind
        raise CheckpointError(_reason(e) if isinstance(e, CheckpointException) else str(e)) from None
    if on_written is not None:
        on_written()
    error = None
    if is_coordinator(group):
        try:
            if not os.path.isfile(os.path.join(tmp, ".metadata")):
                raise CheckpointError(f"{tmp}: no .metadata was written")
            missing = missing_files(tmp, metadata)
            if missing:
                raise CheckpointError(f"{tmp}: storage files named in .metadata are missing: {V.short(missing, 300)}")
            if lock is not None:
                lock.verify()
            if os.path.islink(final):
                raise CheckpointError(f"refusing to replace {final}: it is a symbolic link")
            old = final + ".replaced" + _TMP_SUFFIX
            if os.path.isdir(final):
                _remove_tree(old)
                os.replace(final, old)
            os.replace(tmp, final)
            _fsync_dir(checkpoint_dir)
            _remove_tree(old)
        except (CheckpointError, OSError) as e:
            error = str(e)
    share_verdict(error, group)
    return final


def _remove_tree(path: str) -> None:
    """Remove a directory tree we wrote, or a symlink itself (never what it points to)."""
    if os.path.islink(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def latest_checkpoint(checkpoint_dir: str, max_step: int | None = None) -> str | None:
    """The newest complete ``step_XXXXXXXX`` checkpoint under ``checkpoint_dir`` (at most ``max_step``), or None.

    A directory counts only if its name is ``step_`` and 8 or more ASCII digits, it is not a symlink,
    its ``.metadata`` loads with :class:`SafeFileSystemReader`'s unpickler, and every storage file it
    names exists; anything else is skipped and logged. Local: no collective.
    """
    if max_step is not None:
        max_step = V.step("max_step", max_step)
    if not os.path.isdir(checkpoint_dir):
        return None
    found = []
    with os.scandir(checkpoint_dir) as entries:
        for entry in entries:
            m = STEP_DIR.fullmatch(entry.name)
            if m is None:
                continue
            if entry.is_symlink():
                log.warning("skipping %s: a symbolic link is never taken as a checkpoint", entry.path)
            elif entry.is_dir(follow_symlinks=False):
                found.append((int(m.group(1)), entry.name))
    for step, name in sorted(found, reverse=True):
        if max_step is not None and step > max_step:
            continue
        path = os.path.join(checkpoint_dir, name)
        try:
            missing = missing_files(path, read_metadata_file(path))
        except CheckpointError as e:
            log.warning("skipping %s: %s", path, e)
            continue
        if missing:
            log.warning("skipping %s: storage files named in .metadata are missing: %s", path, V.short(missing, 300))
            continue
        return path
    return None


def agree_on_checkpoint(checkpoint: str | None, group: Any = None) -> str | None:
    """Return ``checkpoint`` (each rank's :func:`latest_checkpoint`) if every rank found the same one; else
    raise the same :class:`CheckpointError` on every rank, naming what each saw (e.g. a stale listing)."""
    value = [0, 0] if checkpoint is None else [1, fingerprint(os.path.normpath(checkpoint))]
    agree("the checkpoint to resume from", value, f"{checkpoint or 'no complete checkpoint'}", None, group)
    return checkpoint


def read_dcp_state(checkpoint_dir: str, key: str = "lr_scheduler") -> dict[str, Any]:
    """The scheduler (or hook) state saved under ``key`` in a DCP checkpoint, on any world size.

    Reads the entries the checkpoint holds (not those this run expects) in this process alone (never
    a collective, so any rank may call it at any time), with no pickle of code.
    """
    import torch.distributed.checkpoint as dcp

    metadata = read_metadata_file(checkpoint_dir)
    prefix = key + "."
    keys = [k for k in metadata.state_dict_metadata if isinstance(k, str) and k.startswith(prefix)]
    if not keys:
        listed = V.short(sorted(map(str, metadata.state_dict_metadata))[:8], 300)
        raise CheckpointError(f"{checkpoint_dir} holds no {key!r} entry (keys: {listed}...)")
    template: dict[str, Any] = {}
    try:
        for k in keys:
            node = template
            parts = k[len(prefix):].split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = None
    except (TypeError, AttributeError):
        raise CheckpointError(f"{checkpoint_dir}: inconsistent entries under {key!r}") from None
    loaded = {key: template}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load(loaded, storage_reader=SafeFileSystemReader(checkpoint_dir), planner=SafeLoadPlanner(), no_dist=True)
    except (Exception, CheckpointException) as e:  # DCP wraps rank failures in a BaseException
        raise CheckpointError(f"{checkpoint_dir}: corrupt, truncated or unsafe scheduler entry: {_reason(e)}") from None
    return loaded[key]


def _reason(error: BaseException) -> str:
    """The innermost message, e.g. our own refusal inside DCP's per-rank wrapper."""
    text = str(error)
    for line in text.splitlines():
        if "CheckpointError: " in line:
            reason = line.split("CheckpointError: ", 1)[1]
            return reason if len(reason) <= 900 else reason[:880] + "..."
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"[:300]


# ---------------------------------------------------------------------- Booster
def save_booster_state(obj: Any, checkpoint_dir: str, layout: Mapping[str, Any] | None = None) -> str:
    """Write a scheduler's or hook's state as JSON into a Booster checkpoint directory.

    Written once (coordinator rank), atomically (temporary file, fsync, rename); every rank
    waits for it. ``layout`` (e.g. dp/pp/tp sizes) is stored for information.
    """
    path = os.path.join(checkpoint_dir, BOOSTER_FILE)
    if is_coordinator():
        os.makedirs(checkpoint_dir, exist_ok=True)
        saved = read_state(obj.state_dict())
        payload = _payload(saved.scheduler_state(), saved.global_step, layout, saved.clock, saved.resumed_record())
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(payload, f, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(checkpoint_dir)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    return path


def read_booster_state(checkpoint: str) -> SavedState:
    """The state in a Booster checkpoint, checked (:func:`~colossal_sched.state.read_state`): our JSON file in a
    directory, or a file written by ColossalAI's ``booster.save_lr_scheduler`` (read with ``weights_only=True``),
    for migration."""
    path = os.path.join(checkpoint, BOOSTER_FILE) if os.path.isdir(checkpoint) else checkpoint
    if not os.path.isfile(path):
        raise CheckpointError(f"no scheduler state at {path}")
    if os.path.getsize(path) > MAX_STATE_CHARS:
        raise CheckpointError(f"{path}: {os.path.getsize(path)} bytes, more than the {MAX_STATE_CHARS} a scheduler state may have")
    if path.endswith(".json"):  # save_booster_state's payload: read as a hook's packed state is
        with open(path, "rb") as f:
            packed = {HOOK_KEY: f.read()}
        try:
            return read_state(packed)
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a plain-data scheduler state ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: expected a dict, got {type(state).__name__}")
    return read_state(state)


def load_booster_state(obj: Any, checkpoint: str, on_mismatch: str = "raise") -> ClosedFormLR:
    """Restore a scheduler or hook from :func:`save_booster_state`'s file or ColossalAI's own."""
    return restore(obj, read_booster_state(checkpoint), on_mismatch)


def restore(obj: Any, saved: Mapping[str, Any] | SavedState, on_mismatch: OnMismatch = "raise",
            logger: Callable[[str], None] | None = None) -> ClosedFormLR:
    """Apply :func:`resume` to a scheduler, or to a hook (then its global step and clock follow the checkpoint's).

    Where the schedules differed, what was kept and what overridden is logged once and, on a hook, kept as its
    ``resumed`` record (saved with its state, printed by ``colossal-sched inspect``); an identical schedule keeps
    the saved record. Nothing changes on a refusal: neither the scheduler, its optimizer, nor the hook.
    """
    policy = _policy(on_mismatch)
    hook = obj if hasattr(obj, "lr_scheduler") else None
    scheduler = obj.lr_scheduler if hook is not None else obj
    saved = read_state(saved)
    positioned = hook is not None and saved.clock is not None
    progress = PROGRESS if positioned else ("step",)
    try:
        with unchanged_on_error(scheduler, hook):  # any error but a refusal is reported as a refused state
            try:
                chosen, record = _resume(scheduler, saved, policy, logger or log.warning, progress, positioned)
            except Exception as e:  # the peers are in the sync of hook.step below: they raise there too
                if hook is not None:
                    hook.refuse(e)
                raise
            if hook is not None:
                hook.lr_scheduler = chosen
                hook.clock = Clock.resumed(saved.clock, chosen.unit, chosen.last_epoch)
                hook.step(V.step("global_step", chosen.last_epoch if saved.global_step is None else saved.global_step))
                hook.resumed = record if record is not None else saved.resumed_record()
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as e:
        if isinstance(e, (CheckpointError, ScheduleMismatchError, ResumeChoiceError)):
            raise
        raise CheckpointError(f"scheduler state refused: {type(e).__name__}: {V.short(str(e), 600)}") from None
    return chosen


def on_mismatch_arg(text: str) -> str | ResumeChoice:
    """``--on-mismatch``'s value checked (an ``argparse`` type): one of :data:`ON_MISMATCH` or
    :meth:`ResumeChoice.parse`'s text, e.g. ``"checkpoint=step,samples;current=total_steps"``."""
    import argparse

    try:
        return _policy(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _policy(on_mismatch: Any) -> str | ResumeChoice:
    """``on_mismatch`` checked: one of :data:`ON_MISMATCH`, else a :class:`ResumeChoice` (refusals name the fields)."""
    if isinstance(on_mismatch, str) and on_mismatch in ON_MISMATCH:
        return on_mismatch
    if isinstance(on_mismatch, str) and "=" not in on_mismatch:
        raise ResumeChoiceError(f"on_mismatch must be one of {list(ON_MISMATCH)} or per field, e.g. "
                                f"'checkpoint=step,samples;current=total_steps', got {V.short(on_mismatch)}")
    return ResumeChoice.of(on_mismatch)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["ON_MISMATCH", "BOOSTER_FILE", "HOOK_KEY", "LOCK_FILE", "STEP_DIR", "RunLock", "SafeFileSystemReader",
           "SafeLoadPlanner", "AgreedFileSystemWriter", "pack_state", "unpack_state", "resume", "restore", "save_dcp",
           "latest_checkpoint", "agree_on_checkpoint", "read_dcp_state", "save_booster_state", "read_booster_state",
           "load_booster_state", "world_layout", "ResumeChoice", "ResumeChoiceError", "OnMismatch",
           "on_mismatch_arg", "CheckpointError", "ScheduleMismatchError"]
