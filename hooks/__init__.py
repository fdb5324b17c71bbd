"""Engine hooks that drive colossal_sched schedulers in ColossalAI-style training loops."""
from .base import EngineHook, register_with_colossalai
from .lr_scheduler_hook import LRSchedulerHook

__all__ = ["EngineHook", "LRSchedulerHook", "register_with_colossalai"]
