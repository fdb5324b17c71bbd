"""A ``transformers.TrainerCallback`` that drives a colossal_sched scheduler on HF Trainer's global step."""
from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from .hook_source import HookSource


class ColossalSchedHFCallback(HookSource, TrainerCallback):
    """Make the HF ``Trainer``'s update :math:`n` (``state.global_step``) run with ``lr_at(n)``.

    Pass the scheduler to the Trainer too (``optimizers=(optimizer, scheduler)``), so that its
    ``lr_scheduler.step()`` and its logged ``learning_rate`` are this schedule's; the callback
    then puts the schedule on the Trainer's global step (resume, skipped updates) and
    broadcasts the rank-0 lr like :class:`LRSchedulerHook`.

    Args:
        scheduler: An :class:`LRSchedulerHook`, a colossal_sched scheduler, or ``f(optimizer) -> scheduler``.
        **hook_kwargs: For the hook built around a scheduler (``sync``, ``group``, ``writer``, ``log_fn`` ...).
    """

    def on_train_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        self.start_hook(getattr(optimizer, "optimizer", optimizer)).step(state.global_step)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.hook.step(state.global_step)
