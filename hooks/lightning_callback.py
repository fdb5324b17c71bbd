"""A Lightning ``Callback`` that drives a colossal_sched scheduler on ``trainer.global_step``."""
from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import Callback

from .hook_source import HookSource


class ColossalSchedLightningCallback(HookSource, Callback):
    """Make Lightning's update :math:`n` (``trainer.global_step``) run with ``lr_at(n)``.

    Return only the optimizer from ``configure_optimizers`` and give the schedule here, as a
    scheduler, an :class:`LRSchedulerHook`, or a factory ``f(optimizer) -> scheduler`` (built on
    the first optimizer when training starts). The hook's state travels in Lightning checkpoints.

    Args:
        scheduler: An :class:`LRSchedulerHook`, a colossal_sched scheduler, or ``f(optimizer) -> scheduler``.
        **hook_kwargs: For the hook built around a scheduler (``sync``, ``group``, ``writer``, ``log_fn`` ...).
    """

    def __init__(self, scheduler: Any, **hook_kwargs: Any) -> None:
        super().__init__(scheduler, **hook_kwargs)
        self._pending_state: dict | None = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        hook = self.start_hook(trainer.optimizers[0])
        if self._pending_state is not None:
            hook.load_state_dict(self._pending_state)
            self._pending_state = None
        hook.step(trainer.global_step)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.hook.step(trainer.global_step)
        pl_module.log_dict({k: v for k, v in self.hook.scalars().items()}, on_step=True, on_epoch=False)

    def state_dict(self) -> dict[str, Any]:
        return self.hook.state_dict() if self.hook is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            self._pending_state = state_dict  # the hook exists once training starts
