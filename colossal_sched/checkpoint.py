"""Scheduler state inside sharded checkpoints (torch.distributed.checkpoint and ColossalAI Booster).

* DCP: schedulers and :class:`hooks.LRSchedulerHook` are ``Stateful``; pass them in the state
  dict given to ``dcp.save``/``dcp.load``. :func:`save_dcp` adds an atomic publish (a checkpoint
  is complete once its directory has its final name), :func:`read_dcp_state` reads the saved
  scheduler state back with no pickle of code (``weights_only=True``) at any world size.
* Booster: :func:`save_booster_state` / :func:`load_booster_state` keep the state as JSON beside
  the shards that ``booster.save_model(..., shard=True)`` writes.
* :func:`resume` applies the resume rules: a different schedule raises unless ``on_mismatch``
  says which one to keep.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import warnings
from typing import Any, Callable, Mapping

import torch
import torch.distributed as dist
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

from . import _validate as V
from .base import FORMAT_VERSION, ClosedFormLR
from .builder import scheduler_class
from .compat import is_native, to_native_state
from .errors import CheckpointError, ScheduleMismatchError
from .lambdas import LambdaLR, MultiplicativeLR

log = logging.getLogger("colossal_sched")

ON_MISMATCH = ("raise", "use_checkpoint", "use_current")
BOOSTER_FILE = "colossal_sched_lr_scheduler.json"
STEP_DIR = re.compile(r"^step_(\d{8,})$")
_TMP_SUFFIX = ".partial"


# ------------------------------------------------------------------ shared bits
def _is_coordinator() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def world_layout(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The world a checkpoint was written from (kept for information; never required to match)."""
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    return {"world_size": world, **(dict(extra) if extra else {})}


HOOK_KEY = "colossal_sched"


def pack_state(scheduler_state: Mapping[str, Any], global_step: int | None, layout: Mapping[str, Any] | None = None) -> dict[str, str]:
    """A hook's state as one JSON entry: scheduler state, global step and world layout.

    One entry, because DCP stores every non-tensor leaf as a file record of its own (about 1 KiB
    each): this way the state adds about 1.6 KiB to a checkpoint instead of about 14 KiB.
    """
    payload = {"format_version": FORMAT_VERSION, "scheduler": dict(scheduler_state), "global_step": global_step,
               "world_layout": world_layout(layout)}
    return {HOOK_KEY: json.dumps(payload, allow_nan=False)}


def unpack_state(obj: Any) -> tuple[dict[str, Any], int | None]:
    """``(scheduler state, global step or None)`` from a packed hook state, a ``{"scheduler": ...,
    "global_step": ...}`` dict, or a bare scheduler state (ours, torch's or colossalai's)."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"expected a scheduler or hook state (a dict), got {type(obj).__name__}")
    if HOOK_KEY in obj:
        text = obj[HOOK_KEY]
        try:
            obj = json.loads(text.decode() if isinstance(text, bytes) else text)
        except (ValueError, TypeError, AttributeError) as e:
            raise CheckpointError(f"corrupt or truncated hook state ({type(e).__name__}: {e})") from e
        if not isinstance(obj, Mapping) or not isinstance(obj.get("scheduler"), Mapping):
            raise CheckpointError("corrupt hook state: no 'scheduler' entry")
    if isinstance(obj.get("scheduler"), Mapping):
        return dict(obj["scheduler"]), obj.get("global_step")
    return dict(obj), None


def schedule_from_state(state: Mapping[str, Any]) -> ClosedFormLR:
    """Rebuild a saved schedule on a stand-in optimizer (for inspection and lr comparisons)."""
    state, _ = unpack_state(state)
    if not is_native(state):
        raise CheckpointError("only colossal_sched states carry the schedule; this one is a torch/colossalai state")
    cls = scheduler_class(state["class"])
    if issubclass(cls, (LambdaLR, MultiplicativeLR)):
        raise CheckpointError(f"{state['class']} is defined by user functions that are not stored in the checkpoint")
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in state["base_lrs"]]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, state["base_lrs"])], lr=0.1, momentum=0.9)
    sched = cls(opt, **state["hyperparams"])
    sched.load_state_dict(state)
    return sched


# ---------------------------------------------------------------- resume rules
def resume(
    scheduler: ClosedFormLR,
    saved: Mapping[str, Any],
    on_mismatch: str = "raise",
    logger: Callable[[str], None] | None = None,
) -> ClosedFormLR:
    """Continue ``scheduler`` from a saved state; returns the scheduler to train with.

    The saved schedule (class, every hyperparameter, base lrs) is compared with the one the run
    built. Identical: the state is loaded. Different: ``"raise"`` (default) lists each differing
    field with both values; ``"use_checkpoint"`` keeps the checkpoint's schedule; ``"use_current"``
    keeps the new one and continues from the saved step. The choice is logged with the old and
    new lr at that step. Either way the optimizer holds the lr of the saved step afterwards.
    """
    V.choice("on_mismatch", on_mismatch, ON_MISMATCH)
    say = logger or log.warning
    raw, _ = unpack_state(saved)
    state = to_native_state(scheduler, raw)
    if len(state["base_lrs"]) != len(scheduler.base_lrs):
        raise ScheduleMismatchError(
            [("param groups", len(state["base_lrs"]), len(scheduler.base_lrs))],
            hint="the checkpoint was saved with another number of param groups",
        )
    diffs = scheduler.diff_state(state, with_base_lrs=True)
    step = state["last_epoch"]
    if not diffs:
        scheduler.load_state_dict(raw)
        return scheduler
    if on_mismatch == "raise":
        raise ScheduleMismatchError(diffs, hint='pass on_mismatch="use_checkpoint" or "use_current" to choose one')
    old = _saved_lr(state, step)
    new = scheduler.lr_at(step)
    fields = ", ".join(f"{n}: {s!r} -> {c!r}" for n, s, c in diffs)
    if on_mismatch == "use_current":
        scheduler.step_to(step)
        say(f"resume at step {step}: keeping the current schedule ({fields}); lr {old} (checkpoint) -> {new} (current)")
        return scheduler
    if state["class"] == type(scheduler).__name__:
        _adopt(scheduler, raw)
        chosen = scheduler
    else:
        chosen = scheduler_class(state["class"])(scheduler.optimizer, **state["hyperparams"])
        chosen.load_state_dict(raw)
    say(f"resume at step {step}: keeping the checkpoint's schedule ({fields}); lr {new} (current) -> {old} (checkpoint)")
    return chosen


def _saved_lr(state: dict[str, Any], step: int) -> Any:
    """The checkpoint schedule's lr at ``step``: rebuilt where it can be, else the saved last lr."""
    try:
        return schedule_from_state(state).lr_at(step)
    except (CheckpointError, ValueError, TypeError):
        return state.get("last_lr")


def _adopt(scheduler: ClosedFormLR, state: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the choice is logged by resume()
        scheduler.load_state_dict(state, strict=False)


# ------------------------------------------------------------------------ DCP
class SafeLoadPlanner(DefaultLoadPlanner):
    """A DCP load planner that reads non-tensor entries with ``torch.load(weights_only=True)``."""

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        fqn = read_item.dest_index.fqn
        try:
            obj = torch.load(value, weights_only=True)
        except Exception as e:
            raise CheckpointError(f"refusing checkpoint entry {fqn!r}: not plain data ({type(e).__name__}: {e})") from e
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[fqn], obj)
        else:
            self.state_dict[fqn] = obj


def save_dcp(
    state: dict[str, Any], checkpoint_dir: str, step: int, on_written: Callable[[], None] | None = None
) -> str:
    """``dcp.save(state)`` into ``checkpoint_dir/step_XXXXXXXX``, published atomically.

    Written under a ``.partial`` name and renamed by the coordinator once every rank has
    finished, so a job killed mid-save never leaves a directory that looks complete.
    ``on_written`` runs on every rank after the shards are written and before the publish
    (a fault-injection point for tests).
    """
    import torch.distributed.checkpoint as dcp

    final = os.path.join(checkpoint_dir, f"step_{step:08d}")
    tmp = final + _TMP_SUFFIX
    if _is_coordinator():
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(checkpoint_dir, exist_ok=True)
    _barrier()
    dcp.save(state, checkpoint_id=tmp)
    _barrier()
    if on_written is not None:
        on_written()
    if _is_coordinator():
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(checkpoint_dir)
    _barrier()
    return final


def latest_checkpoint(checkpoint_dir: str) -> str | None:
    """The newest complete ``step_XXXXXXXX`` checkpoint under ``checkpoint_dir``, or None."""
    if not os.path.isdir(checkpoint_dir):
        return None
    steps = []
    for name in os.listdir(checkpoint_dir):
        m = STEP_DIR.match(name)
        if m and os.path.exists(os.path.join(checkpoint_dir, name, ".metadata")):
            steps.append((int(m.group(1)), name))
    return os.path.join(checkpoint_dir, max(steps)[1]) if steps else None


def read_dcp_state(checkpoint_dir: str, key: str = "lr_scheduler") -> dict[str, Any]:
    """The scheduler (or hook) state saved under ``key`` in a DCP checkpoint, on any world size.

    Reads the entries the checkpoint holds (not those this run expects), with no pickle of code.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import FileSystemReader

    if not os.path.exists(os.path.join(checkpoint_dir, ".metadata")):
        raise CheckpointError(f"{checkpoint_dir} is not a complete DCP checkpoint (no .metadata)")
    try:
        metadata = FileSystemReader(checkpoint_dir).read_metadata()
    except Exception as e:
        raise CheckpointError(f"{checkpoint_dir}: unreadable DCP metadata ({type(e).__name__}: {e})") from e
    prefix = key + "."
    keys = [k for k in metadata.state_dict_metadata if k.startswith(prefix)]
    if not keys:
        raise CheckpointError(f"{checkpoint_dir} holds no {key!r} entry (keys: {sorted(metadata.state_dict_metadata)[:8]}...)")
    template: dict[str, Any] = {}
    for k in keys:
        node = template
        parts = k[len(prefix) :].split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = None
    loaded = {key: template}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load(loaded, checkpoint_id=checkpoint_dir, planner=SafeLoadPlanner(), no_dist=not dist.is_initialized())
    except (Exception, CheckpointException) as e:  # DCP wraps rank failures in a BaseException
        raise CheckpointError(f"{checkpoint_dir}: corrupt, truncated or unsafe scheduler entry: {_reason(e)}") from e
    return loaded[key]


def _reason(error: BaseException) -> str:
    """The innermost message, e.g. our own refusal inside DCP's per-rank wrapper."""
    text = str(error)
    for line in text.splitlines():
        if "CheckpointError: " in line:
            return line.split("CheckpointError: ", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"[:300]


# ---------------------------------------------------------------------- Booster
def save_booster_state(obj: Any, checkpoint_dir: str, layout: Mapping[str, Any] | None = None) -> str:
    """Write a scheduler's or hook's state as JSON into a Booster checkpoint directory.

    Written once (coordinator rank), atomically (temporary file, fsync, rename); every rank
    waits for it. ``layout`` (e.g. dp/pp/tp sizes) is stored for information.
    """
    path = os.path.join(checkpoint_dir, BOOSTER_FILE)
    if _is_coordinator():
        os.makedirs(checkpoint_dir, exist_ok=True)
        sched_state, step = unpack_state(obj.state_dict())
        payload = {"format_version": FORMAT_VERSION, "scheduler": sched_state, "global_step": step,
                   "world_layout": world_layout(layout)}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(payload, f, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(checkpoint_dir)
    _barrier()
    return path


def read_booster_state(checkpoint: str) -> dict[str, Any]:
    """The state in a Booster checkpoint: our JSON file in a directory, or a file written by
    ColossalAI's ``booster.save_lr_scheduler`` (read with ``weights_only=True``), for migration."""
    path = os.path.join(checkpoint, BOOSTER_FILE) if os.path.isdir(checkpoint) else checkpoint
    if not os.path.exists(path):
        raise CheckpointError(f"no scheduler state at {path}")
    if path.endswith(".json"):
        try:
            with open(path) as f:
                payload = json.load(f)
            unpack_state(payload)
            return payload
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: corrupt or truncated scheduler state ({type(e).__name__}: {e})") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a plain-data scheduler state ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: expected a dict, got {type(state).__name__}")
    return dict(state)


def load_booster_state(obj: Any, checkpoint: str, on_mismatch: str = "raise") -> ClosedFormLR:
    """Restore a scheduler or hook from :func:`save_booster_state`'s file or ColossalAI's own."""
    saved = read_booster_state(checkpoint)
    return restore(obj, saved, on_mismatch)


def restore(obj: Any, saved: Mapping[str, Any], on_mismatch: str = "raise") -> ClosedFormLR:
    """Apply :func:`resume` to a scheduler, or to a hook (then its global step follows)."""
    scheduler = obj.lr_scheduler if hasattr(obj, "lr_scheduler") else obj
    chosen = resume(scheduler, saved, on_mismatch)
    if hasattr(obj, "lr_scheduler"):
        obj.lr_scheduler = chosen
        _, step = unpack_state(saved)
        obj.step(V.integer("global_step", chosen.last_epoch if step is None else step, 0))
    return chosen


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
