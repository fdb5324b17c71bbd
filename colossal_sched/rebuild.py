"""Rebuilding the schedule a saved state holds (:meth:`ClosedFormLR.from_state <colossal_sched.base.ClosedFormLR.from_state>`)."""
from __future__ import annotations

import warnings
from typing import Any, Iterable

import torch
from torch.optim import Optimizer

from . import _validate as V
from . import param_keys
from .base import REGISTRY, ClosedFormLR
from .errors import CheckpointError
from .rollback import groups_unchanged_on_error
from .state import read_state


def rebuild(state: Any, optimizer: Optimizer | None = None) -> ClosedFormLR:
    """:meth:`ClosedFormLR.from_state`: the schedule of ``state`` (with the other keys it drives) on ``optimizer``."""
    saved = read_state(state)
    if not saved.native:
        raise CheckpointError("only colossal_sched states carry the schedule; this one is a torch/colossalai state")
    kind = REGISTRY.get(saved.cls)
    if kind is None:
        raise CheckpointError(f"unknown scheduler class in checkpoint: {V.short(saved.cls)}; valid types: "
                              f"{V.short(sorted(REGISTRY), 300)}")
    if not kind.rebuildable:
        raise CheckpointError(f"{saved.cls} is defined by user functions that are not stored in the checkpoint")
    try:
        with warnings.catch_warnings():
            if optimizer is None:
                warnings.simplefilter("ignore")
                optimizer = stand_in_optimizer(saved.base_lrs, saved.fields.get("group_names"))
                param_keys.add_saved_keys(optimizer, [saved.fields, *(saved.fields.get("schedules") or {}).values()])
            with groups_unchanged_on_error(optimizer):  # a refusal leaves the given optimizer as it was
                key = saved.fields.get("key", "lr")
                sched = kind.for_key(key, optimizer, **saved.hyperparams).counting(saved.fields.get("unit", "updates"))
                sched.add_schedules(*(rebuild(sub, optimizer) for sub in (saved.fields.get("schedules") or {}).values()))
                sched.load_state_dict(saved)
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as e:
        raise CheckpointError(f"the checkpoint's schedule does not build: {V.short(str(e), 600)}") from None
    return sched


def stand_in_optimizer(lrs: Iterable[float], names: Iterable[str | None] | None = None) -> Optimizer:
    """An SGD optimizer with one param group per lr (named ``names``), to rebuild a schedule on."""
    lrs = list(lrs)
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr, "name": name}
                            for lr, name in zip(lrs, names or [None] * len(lrs))], lr=0.1, momentum=0.9)
