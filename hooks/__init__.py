"""Engine hooks that drive colossal_sched schedulers in ColossalAI-style training loops.

``import hooks`` does not import colossalai. When colossalai is installed, every other name of
``colossalai.legacy.trainer.hooks`` (``LossHook``, ``LogMetricByEpochHook``, ``ThroughputHook``, ...)
is also available here, resolved on first use, so ColossalAI's examples run with
``from colossalai.legacy.trainer import hooks`` replaced by ``import hooks``; ``hooks.LRSchedulerHook``
is always this package's.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

from .base import EngineHook, register_with_colossalai
from .lr_scheduler_hook import LRSchedulerHook
from .skipped_updates import SkippedUpdates

__all__ = ["EngineHook", "LRSchedulerHook", "SkippedUpdates", "register_with_colossalai"]

#: where the legacy Trainer's hooks live
COLOSSALAI_HOOKS = "colossalai.legacy.trainer.hooks"
#: the names it exports (colossalai 0.5.0) other than LRSchedulerHook; only these import colossalai
#: (``from hooks import hf_callback`` probes attributes first, and must not import it)
COLOSSALAI_NAMES = (
    "BaseHook", "MetricHook", "LossHook", "AccuracyHook", "LogMetricByEpochHook", "TensorboardHook",
    "LogTimingByEpochHook", "LogMemoryByEpochHook", "ThroughputHook", "LogMetricByStepHook", "SaveCheckpointHook",
)  # fmt: skip


def __getattr__(name: str) -> Any:
    """``hooks.LossHook`` etc.: the name from ``colossalai.legacy.trainer.hooks``, imported on first use."""
    loaded = sys.modules.get(COLOSSALAI_HOOKS)
    if name not in COLOSSALAI_NAMES and name not in getattr(loaded, "__all__", ()):
        raise AttributeError(f"module 'hooks' has no attribute {name!r}")
    try:
        module = importlib.import_module(COLOSSALAI_HOOKS)
    except ImportError as e:
        raise AttributeError(
            f"module 'hooks' has no attribute {name!r}: names other than {__all__} come from {COLOSSALAI_HOOKS}, "
            f"which cannot be imported ({type(e).__name__}: {e}); install it with "
            "pip install --no-deps colossalai==0.5.0 (see launch_scripts/setup_env.sh)"
        ) from None
    if not hasattr(module, name):
        raise AttributeError(f"module 'hooks' has no attribute {name!r} (nor has {COLOSSALAI_HOOKS})")
    value = getattr(module, name)
    register_with_colossalai(EngineHook)
    globals()[name] = value
    return value
