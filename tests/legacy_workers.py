"""Bodies of the legacy-Trainer tests: ColossalAI's own run and ours, side by side on every rank of a real gloo world."""
import logging

import torch

MICRO_BATCHES_PER_EPOCH = 8


def _data(n=MICRO_BATCHES_PER_EPOCH):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 4, generator=g), torch.randint(0, 2, (4,), generator=g)) for _ in range(n)]


def _train(config_accum, make_scheduler, make_hooks, epochs, timer=False, logger=None):
    """One legacy ``initialize`` + ``Trainer.fit``; returns the lr of every micro-batch and the LR metric after it."""
    from colossalai.legacy import initialize
    from colossalai.legacy.core import global_context as gpc
    from colossalai.legacy.trainer import Trainer
    from colossalai.legacy.trainer import hooks as chooks
    from colossalai.utils import MultiTimer

    if config_accum is None:
        gpc.config.pop("gradient_accumulation", None)
    else:
        gpc.config["gradient_accumulation"] = config_accum
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = make_scheduler(opt)
    engine, loader, _, sched = initialize(model, opt, torch.nn.CrossEntropyLoss(), train_dataloader=_data(),
                                          lr_scheduler=sched)
    seen = []

    class Record(chooks.BaseHook):
        """Last in the hook order: the lr the micro-batch ran with, and the LR metric after it."""

        def __init__(self):
            super().__init__(priority=100)

        def before_train_iter(self, trainer):
            self.lr = opt.param_groups[0]["lr"]

        def after_train_iter(self, trainer, *args):
            seen.append((trainer.cur_step, self.lr, trainer.states["metrics"]["train"]["LR"].get_last_step_value()))

    trainer = Trainer(engine=engine, timer=MultiTimer() if timer else None, logger=logger)
    trainer.fit(train_dataloader=loader, epochs=epochs, hooks=make_hooks(sched) + [Record()], display_progress=False)
    return seen, type(sched).__name__


def grad_accum(rank, world, sizes, warmup):
    """For each accumulation size A: ColossalAI's LinearWarmupLR + LRSchedulerHook, then ours (the
    wrapped scheduler ``initialize`` returns). By update: 2 epochs of 8 micro-batches = 16 / A updates;
    by epoch: 4 epochs, the wrapper stepping its scheduler every A epochs."""
    from colossalai.legacy.trainer import hooks as chooks
    from colossalai.nn.lr_scheduler import LinearWarmupLR as TheirLinearWarmupLR

    import colossal_sched as cs
    import hooks
    from hooks.colossalai_compat import init_legacy_context

    init_legacy_context()
    out = {}
    for by_epoch in (False, True):
        epochs = 4 if by_epoch else 2
        for size in sizes:
            total = max(1, (epochs if by_epoch else epochs * MICRO_BATCHES_PER_EPOCH) // size)
            w = 0 if by_epoch else warmup
            theirs, theirs_type = _train(size, lambda o: TheirLinearWarmupLR(o, total, warmup_steps=w),
                                         lambda s: [chooks.LRSchedulerHook(lr_scheduler=s, by_epoch=by_epoch)], epochs)
            ours, ours_type = _train(size, lambda o: cs.LinearWarmupLR(o, total, warmup_steps=w),
                                     lambda s: [hooks.LRSchedulerHook(lr_scheduler=s, by_epoch=by_epoch)], epochs)
            out[f"{size}{'/epoch' if by_epoch else ''}"] = {"theirs": theirs, "ours": ours, "wrapped": [theirs_type, ours_type]}
    return out


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def titans(rank, world, epochs):
    """ColossalAI's GPT "titans" hook list (LossHook, LRSchedulerHook by epoch, LogMetricByEpochHook,
    ThroughputHook, LogMetricByStepHook) with colossalai's hooks and LinearWarmupLR, then with
    ``import hooks`` and colossal_sched's LinearWarmupLR; returns the lines each run logged."""
    from colossalai.legacy.trainer import hooks as chooks
    from colossalai.logging import get_dist_logger
    from colossalai.nn.lr_scheduler import LinearWarmupLR as TheirLinearWarmupLR

    import colossal_sched as cs
    import hooks
    from hooks.colossalai_compat import allow_cpu_synchronize, init_legacy_context

    init_legacy_context()
    allow_cpu_synchronize()
    logger = get_dist_logger("titans")
    capture = _Capture()
    logger._logger.addHandler(capture)

    def hook_list(ns):
        return lambda sched: [
            ns.LossHook(),
            ns.LRSchedulerHook(lr_scheduler=sched, by_epoch=True),
            ns.LogMetricByEpochHook(logger),
            ns.ThroughputHook(ignored_steps=2, tflop_per_step=1.0),
            ns.LogMetricByStepHook(),
        ]

    logs = {}
    for label, ns, make in (("colossalai", chooks, lambda o: TheirLinearWarmupLR(o, total_steps=epochs, warmup_steps=5)),
                            ("ours", hooks, lambda o: cs.LinearWarmupLR(o, total_steps=epochs, warmup_steps=5))):
        capture.lines = []
        _train(None, make, hook_list(ns), epochs, timer=True, logger=logger)
        logs[label] = list(capture.lines)
    return {"logs": logs, "lazy": [hooks.LossHook is chooks.LossHook, hooks.LRSchedulerHook is not chooks.LRSchedulerHook]}
