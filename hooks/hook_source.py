"""The hook an adapter (HF, Lightning) drives: given, built around a scheduler, or built from a factory later."""
from __future__ import annotations

from typing import Any

from colossal_sched import ClosedFormLR
from colossal_sched import _validate as V

from .lr_scheduler_hook import LRSchedulerHook


def is_factory(obj: Any) -> bool:
    """Whether ``obj`` is a factory ``f(optimizer) -> scheduler`` rather than a scheduler or hook."""
    return callable(obj) and not isinstance(obj, (LRSchedulerHook, ClosedFormLR))


def as_hook(obj: Any, optimizer: Any = None, **hook_kwargs: Any) -> LRSchedulerHook:
    """An :class:`LRSchedulerHook` from a hook, a scheduler, or a factory ``f(optimizer) -> scheduler``."""
    if isinstance(obj, LRSchedulerHook):
        return obj
    if isinstance(obj, ClosedFormLR):
        return LRSchedulerHook(obj, **hook_kwargs)
    if is_factory(obj):
        if optimizer is None:
            raise ValueError("a scheduler factory needs the optimizer; it is built when training starts")
        return LRSchedulerHook(obj(optimizer), **hook_kwargs)
    raise V.ArgumentTypeError(
        f"expected an LRSchedulerHook, a colossal_sched scheduler or a factory f(optimizer), got {type(obj).__name__}"
    )


class HookSource:
    """The constructor the callbacks share: ``hook`` at once from a hook or a scheduler, or None until
    :meth:`start_hook` builds it from a factory ``f(optimizer) -> scheduler`` when training starts.

    Args:
        scheduler: An :class:`LRSchedulerHook`, a colossal_sched scheduler, or ``f(optimizer) -> scheduler``.
        **hook_kwargs: For the hook built around a scheduler (``sync``, ``group``, ``writer``, ``log_fn`` ...).
    """

    def __init__(self, scheduler: Any, **hook_kwargs: Any) -> None:
        self._source, self._hook_kwargs = scheduler, hook_kwargs
        self.hook: LRSchedulerHook | None = None if is_factory(scheduler) else as_hook(scheduler, **hook_kwargs)

    def start_hook(self, optimizer: Any) -> LRSchedulerHook:
        """The hook, built from the factory on ``optimizer`` the first time."""
        if self.hook is None:
            self.hook = as_hook(self._source, optimizer, **self._hook_kwargs)
        return self.hook
