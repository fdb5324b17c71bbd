"""Reading and writing a scheduled hyperparameter of a param group: ``lr``, ``weight_decay``, ``momentum``, Adam's
``beta1`` (``betas[0]``) or any key of the user's. A tensor value is filled in place, never replaced (``lr=torch.tensor``,
``capturable=True`` and ``torch.compile``'d steps hold on to the object)."""
from __future__ import annotations

from typing import Any

import torch

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
