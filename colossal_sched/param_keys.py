"""Reading and writing a scheduled hyperparameter of a param group: ``lr``, ``weight_decay``, ``momentum``, Adam's
``beta1`` (``betas[0]``) or any key of the user's. A tensor value is filled in place, never replaced (``lr=torch.tensor``,
``capturable=True`` and ``torch.compile``'d steps hold on to the object)."""
from __future__ import annotations

from typing import Any

import torch

from . import _validate as V
from .errors import MissingInitialLRError

BETA1 = "beta1"


def has(group: dict[str, Any], key: str) -> bool:
    return "betas" in group if key == BETA1 else key in group


def read(group: dict[str, Any], key: str) -> Any:
    return group["betas"][0] if key == BETA1 else group[key]


def write(group: dict[str, Any], key: str, value: float) -> None:
    old = read(group, key)
    if isinstance(old, torch.Tensor):
        old.fill_(value)
    elif key == BETA1:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group[key] = value


def check_device(group: dict[str, Any], index: int, key: str) -> None:
    """Refuse a tensor value on another device than the group's params where the optimizer step reads it there
    (``capturable`` or ``fused``)."""
    value = read(group, key)
    params = group.get("params") or []
    if not isinstance(value, torch.Tensor) or not params or not (group.get("capturable") or group.get("fused")):
        return
    if value.device != params[0].device:
        raise ValueError(f"param_groups[{index}]['{key}'] is a tensor on {value.device}, but the group's params are on "
                         f"{params[0].device} and its step is capturable/fused: put the {key} on {params[0].device}")


def initial_values(optimizer: Any, key: str, last_epoch: int) -> list[float]:
    """The base values of ``key`` (a scheduler's "base lrs" for another key): ``initial_<key>``, set from the group's
    value on a fresh start, required on a resume (torch's rule for ``initial_lr``)."""
    initial, base = f"initial_{key}", []
    for i, group in enumerate(optimizer.param_groups):
        if not has(group, key):
            raise ValueError(f"key {key!r}: param_groups[{i}] has no such hyperparameter (it has "
                             f"{V.short(sorted(k for k in group if k != 'params'), 200)}); schedule a key the optimizer has")
        check_device(group, i, key)
        if last_epoch == -1:
            value = read(group, key)
            group.setdefault(initial, float(value.item()) if isinstance(value, torch.Tensor) else value)
        elif initial not in group:
            raise MissingInitialLRError(f"param_groups[{i}] has no {initial!r}: resuming with last_epoch={last_epoch} "
                                        "needs the optimizer state of the run that created it")
        base.append(V.real(f"param_groups[{i}][{initial!r}]", group[initial], low=0.0))
    return base


def add_saved_keys(optimizer: Any, states: list[Any]) -> None:
    """Give a stand-in optimizer the keys that saved schedule ``states`` write, at their base values."""
    for state in states:
        key = state.get("key", "lr")
        for group, value in zip(optimizer.param_groups, state["base_lrs"]):
            if not has(group, key):
                group.update(betas=(value, 0.999)) if key == BETA1 else group.update({key: value})


def check_companions(sched: Any, schedules: tuple[Any, ...]) -> None:
    """Refuse schedules that ``sched.add_schedules`` cannot drive: not of its optimizer, a key twice, another unit,
    a momentum key where ``sched`` cycles the momentum itself."""
    keys = [sched.key, *(c.key for c in sched._companions)]
    for c in schedules:
        if not hasattr(c, "fingerprint") or getattr(c, "optimizer", None) is not sched.optimizer:
            raise V.ArgumentTypeError(f"schedules must be colossal_sched schedulers of this optimizer, got {c!r}")
        if c.key in keys or c._companions:
            raise ValueError(f"schedules: {c.key!r} is scheduled twice (keys so far {keys}); one schedule per key")
        if getattr(c, "plateau", None) is not None:
            raise ValueError(f"schedules: {c.key!r} is a plateau, which listens to metrics: give it a hook of its own "
                             "(a companion only steps with the lr schedule and never hears one)")
        if c.unit != sched.unit:
            raise ValueError(f"schedules: {c.key!r} counts {c.unit}, this schedule {sched.unit}: one clock unit for all")
        if c.key in ("momentum", BETA1) and sched.momentum_at(0) is not None:
            raise ValueError(f"schedules: {type(sched).__name__} cycles the momentum already; it cannot also follow {c.key!r}")
        keys.append(c.key)
