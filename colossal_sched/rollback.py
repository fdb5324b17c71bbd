"""Rollbacks: a refused construction, load or restore leaves the optimizer (and the scheduler and hook) as they were."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch.optim import Optimizer


@contextmanager
def groups_unchanged_on_error(optimizer: Optimizer) -> Iterator[None]:
    """Put ``optimizer``'s param groups (a tensor lr in place) back as they were if the body raises. It leaves a
    scheduler's ``__dict__`` unread: reading it would cost CPython's fast attribute access on every ``step()``."""
    groups = optimizer.param_groups
    kept = [(dict(g), {k: v.clone() for k, v in g.items() if isinstance(v, torch.Tensor)}) for g in groups]
    try:
        yield
    except BaseException:
        for group, (before, tensors) in zip(groups, kept):
            group.clear()
            group.update(before)
            for k, value in tensors.items():
                group[k].copy_(value)
        raise


@contextmanager
def unchanged_on_error(scheduler: Any, hook: Any = None) -> Iterator[None]:
    """Put ``scheduler`` (attributes, optimizer) and ``hook``'s attributes back as they were if the body raises: the
    rollback of loads and ``checkpoint.restore``. Attributes are kept by reference: the body rebinds, never mutates."""
    objects = [(obj, dict(vars(obj))) for obj in (scheduler, *scheduler._companions, hook) if obj is not None]
    with groups_unchanged_on_error(scheduler.optimizer):
        try:
            yield
        except BaseException:
            for obj, before in objects:
                vars(obj).clear()
                vars(obj).update(before)
            raise
