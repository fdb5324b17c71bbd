"""The engine-hook interface of ColossalAI's legacy Trainer, without importing colossalai."""
from __future__ import annotations

import sys
from typing import Any


class EngineHook:
    """No-op versions of every call a ColossalAI legacy ``Trainer`` makes on a hook.

    Subclasses are registered as virtual subclasses of ``colossalai.legacy.trainer.hooks.BaseHook``
    (an ABC) when colossalai's trainer is loaded, so the Trainer's ``isinstance`` check accepts them
    without this package importing colossalai.
    """

    def __init__(self, priority: int = 1) -> None:
        self.priority = priority
        register_with_colossalai(type(self))

    def after_hook_is_attached(self, trainer: Any) -> None: ...
    def before_train(self, trainer: Any) -> None: ...
    def after_train(self, trainer: Any) -> None: ...
    def before_train_iter(self, trainer: Any) -> None: ...
    def after_train_iter(self, trainer: Any, output: Any, label: Any, loss: Any) -> None: ...
    def before_train_epoch(self, trainer: Any) -> None: ...
    def after_train_epoch(self, trainer: Any) -> None: ...
    def before_test(self, trainer: Any) -> None: ...
    def after_test(self, trainer: Any) -> None: ...
    def before_test_epoch(self, trainer: Any) -> None: ...
    def after_test_epoch(self, trainer: Any) -> None: ...
    def before_test_iter(self, trainer: Any) -> None: ...
    def after_test_iter(self, trainer: Any, output: Any, label: Any, loss: Any) -> None: ...

    def init_runner_states(self, trainer: Any, key: str, val: Any) -> None:
        if key not in trainer.states:
            trainer.states[key] = val


def register_with_colossalai(cls: type) -> bool:
    """Make ``cls`` a virtual subclass of colossalai's ``BaseHook`` if its legacy trainer is loaded."""
    module = sys.modules.get("colossalai.legacy.trainer.hooks")
    if module is None:
        return False
    module.BaseHook.register(cls)
    return True


class LRMetric:
    """The learning-rate entry of ``trainer.states["metrics"]["train"]`` (ColossalAI's ``LearningRateMetric``)."""

    def __init__(self, epoch_only: bool, initial_lr: float = 0.0) -> None:
        self.epoch_only = epoch_only
        self.lr = initial_lr

    def reset(self) -> None:
        pass

    def update(self, lr: float) -> None:
        self.lr = lr

    def get_last_step_value(self) -> float:
        return self.lr

    def get_accumulated_value(self) -> float:
        return self.lr

    @staticmethod
    def is_better(a: Any, b: Any) -> bool:
        return False


def lr_metric(epoch_only: bool, initial_lr: float) -> Any:
    """ColossalAI's ``LearningRateMetric`` when its trainer is loaded, else :class:`LRMetric`."""
    module = sys.modules.get("colossalai.legacy.trainer.hooks._metric_hook")
    cls = getattr(module, "LearningRateMetric", LRMetric)
    return cls(epoch_only=epoch_only, initial_lr=initial_lr)
