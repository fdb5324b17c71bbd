"""Building a scheduler from a ColossalAI-style config dict."""
from __future__ import annotations

from typing import Any, Mapping

from torch.optim import Optimizer

from .base import ClosedFormLR
from .composed import ComposedLR
from .constant import ConstantWarmupLR
from .cosine import CosineAnnealingLR, CosineAnnealingWarmupLR, FlatAnnealingLR, FlatAnnealingWarmupLR
from .decay import ExponentialLR, StepLR
from .lambdas import LambdaLR, MultiplicativeLR
from .linear import LinearWarmupLR
from .multistep import MultiStepLR, MultiStepWarmupLR
from .onecycle import OneCycleLR
from .poly import PolynomialLR, PolynomialWarmupLR
from .restarts import CosineAnnealingWarmRestartsLR
from .inverse_sqrt import InverseSqrtLR
from .wsd import WarmupStableDecayLR

#: ColossalAI's 14 schedulers (``colossalai.nn.lr_scheduler``: same names and signatures), in its order
COLOSSALAI_SCHEDULERS: dict[str, type[ClosedFormLR]] = {
    cls.__name__: cls
    for cls in (
        CosineAnnealingLR, CosineAnnealingWarmupLR, FlatAnnealingLR, FlatAnnealingWarmupLR, LinearWarmupLR,
        MultiStepLR, MultiStepWarmupLR, OneCycleLR, PolynomialLR, PolynomialWarmupLR, LambdaLR,
        MultiplicativeLR, StepLR, ExponentialLR,
    )
}  # fmt: skip

#: every scheduler by name: ColossalAI's, then this package's own
SCHEDULERS: dict[str, type[ClosedFormLR]] = {
    **COLOSSALAI_SCHEDULERS,
    **{cls.__name__: cls for cls in (WarmupStableDecayLR, InverseSqrtLR, CosineAnnealingWarmRestartsLR, ConstantWarmupLR,
                                     ComposedLR)},
}  # fmt: skip


def scheduler_class(name: str) -> type[ClosedFormLR]:
    """The scheduler class called ``name``; ValueError listing the valid names otherwise."""
    try:
        return SCHEDULERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown lr scheduler type {name!r}; valid types: {sorted(SCHEDULERS)}") from None


def build_lr_scheduler(config: Mapping[str, Any], optimizer: Optimizer) -> ClosedFormLR:
    """Build a scheduler from ``{"type": "CosineAnnealingWarmupLR", "total_steps": 1000, ...}``.

    The config is not modified; its other keys are the constructor's keyword arguments.
    """
    if not isinstance(config, Mapping) or "type" not in config:
        raise ValueError(f"config must be a dict with a 'type' key (one of {sorted(SCHEDULERS)}), got {config!r}")
    kwargs = {k: v for k, v in config.items() if k != "type"}
    return scheduler_class(config["type"])(optimizer, **kwargs)
