"""Building a scheduler from a ColossalAI-style config dict."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch.optim import Optimizer

from .base import REGISTRY, ClosedFormLR


class _Registered(Mapping[str, type[ClosedFormLR]]):
    """The registered schedulers by name (ColossalAI's first), read live from the registry: defining a
    scheduler class in this package is all it takes to appear here."""

    def __init__(self, colossalai_only: bool) -> None:
        self._only = colossalai_only

    def _classes(self) -> dict[str, type[ClosedFormLR]]:
        ours = [(n, c) for n, c in REGISTRY.items() if c.colossalai] + [(n, c) for n, c in REGISTRY.items() if not c.colossalai]
        return {n: c for n, c in ours if c.colossalai or not self._only}

    def __getitem__(self, name: str) -> type[ClosedFormLR]:
        return self._classes()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes())

    def __len__(self) -> int:
        return len(self._classes())

    def __repr__(self) -> str:
        return repr(self._classes())


#: every scheduler by name: ColossalAI's (``colossalai = True``), then this package's own
SCHEDULERS: Mapping[str, type[ClosedFormLR]] = _Registered(colossalai_only=False)
#: ColossalAI's 14 (``colossalai.nn.lr_scheduler``: the same names and signatures)
COLOSSALAI_SCHEDULERS: Mapping[str, type[ClosedFormLR]] = _Registered(colossalai_only=True)


def scheduler_class(name: str) -> type[ClosedFormLR]:
    """The scheduler class called ``name``; ValueError listing the valid names otherwise."""
    try:
        return SCHEDULERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown lr scheduler type {name!r}; valid types: {sorted(SCHEDULERS)}") from None


def build_lr_scheduler(config: Mapping[str, Any], optimizer: Optimizer) -> ClosedFormLR:
    """Build a scheduler from ``{"type": "CosineAnnealingWarmupLR", "total_steps": 1000, ...}``.

    The config is not modified; its other keys are the constructor's keyword arguments, but ``unit``: what the
    lengths count (:meth:`~colossal_sched.ClosedFormLR.counting`).
    """
    if not isinstance(config, Mapping) or "type" not in config:
        raise ValueError(f"config must be a dict with a 'type' key (one of {sorted(SCHEDULERS)}), got {config!r}")
    kwargs = {k: v for k, v in config.items() if k not in ("type", "unit")}
    sched = scheduler_class(config["type"])(optimizer, **kwargs)
    return sched.counting(config["unit"]) if "unit" in config else sched
