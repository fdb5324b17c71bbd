"""Bodies of the multi-rank tests; each runs on every rank of a real gloo world."""
import os
import time
import warnings

import torch
import torch.distributed as dist

import colossal_sched as cs
from colossal_sched.errors import LRDivergenceError

COLLECTIVES = ("broadcast", "all_reduce", "all_to_all_single", "all_gather", "all_gather_object", "broadcast_object_list", "barrier",
               "send", "recv", "isend", "irecv", "reduce", "gather", "scatter", "all_to_all", "reduce_scatter")


def optimizer(n_groups=2, lr=0.1, names=None):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(n_groups)]
    groups = [{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(params)]
    for g, name in zip(groups, names or []):
        g["name"] = name
    return torch.optim.SGD(groups, lr=lr, momentum=0.9)


class CountingCollectives:
    """Wrap the real torch.distributed collectives to count calls (they still run)."""

    def __init__(self):
        self.calls = []
        self._saved = {}

    def __enter__(self):
        for name in COLLECTIVES:
            real = getattr(dist, name)
            self._saved[name] = real

            def wrapper(*a, _real=real, _name=name, **k):
                self.calls.append(_name)
                return _real(*a, **k)

            setattr(dist, name, wrapper)
        return self

    def __exit__(self, *exc):
        for name, real in self._saved.items():
            setattr(dist, name, real)


def mesh_for(world, shape):
    from torch.distributed.device_mesh import init_device_mesh

    if shape is None:
        return None
    names = ("dp", "pp", "tp")[-len(shape):] if len(shape) < 3 else ("dp", "pp", "tp")
    return init_device_mesh("cpu", tuple(shape), mesh_dim_names=names)


def lr_agreement(rank, world, shape, steps, sync_every, name, kwargs):
    """Every rank trains ``steps`` updates with the hook; returns lrs seen and collectives per sync."""
    from hooks import LRSchedulerHook

    mesh = mesh_for(world, shape)
    opt = optimizer()
    sched = cs.SCHEDULERS[name](opt, 50, **kwargs)
    hook = LRSchedulerHook(sched, group=mesh, sync_every=sync_every)
    seen = []
    with CountingCollectives() as counter:
        for n in range(steps):
            for _micro in range(2):  # gradient accumulation: the same global step twice
                hook.step(n)
            seen.append([g["lr"] for g in opt.param_groups] + [g["momentum"] for g in opt.param_groups])
    return {"seen": seen, "calls": counter.calls, "syncs": len([n for n in range(steps) if n % sync_every == 0]),
            "expected": [sched.lr_at(n) for n in range(steps)], "src": hook.lr_sync.src}


def perturbed(rank, world, mode):
    """Rank 1's lr function gives 1e-6 more (the same schedule spec: user functions are not in it); the sync
    fixes, warns about or refuses it."""
    from hooks import LRSchedulerHook

    opt = optimizer()
    factor = 1.0 if rank != 1 else 1 + 1e-6
    hook = LRSchedulerHook(cs.LambdaLR(opt, 20, lr_lambda=lambda t: factor), on_divergence=mode)
    out = {"warnings": [], "error": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hook.step(3)
        except LRDivergenceError as e:
            out["error"] = str(e)
    out["warnings"] = [str(w.message) for w in caught if "differs" in str(w.message)]
    out["lrs"] = [g["lr"] for g in opt.param_groups]
    out["divergences"] = hook.lr_sync.divergences
    return out


def layout(rank, world, layouts):
    """Each rank gets the param-group names in ``layouts[rank]`` (None: unnamed, len = count)."""
    from hooks import LRSchedulerHook

    spec = layouts[rank]
    opt = optimizer(len(spec), names=spec if all(isinstance(s, str) for s in spec) else None)
    for g in opt.param_groups:  # a named group has the same base lr on every stage that holds it
        if "name" in g:
            g["lr"] = {"embed": 0.3, "decay": 0.1, "no_decay": 0.02}.get(g["name"], g["lr"])
    t0 = time.monotonic()
    try:
        hook = LRSchedulerHook(cs.StepLR(opt, 10, step_size=2, gamma=0.5))
        hook.step(4)
        return {"lrs": [g["lr"] for g in opt.param_groups], "error": None}
    except ValueError as e:
        return {"error": str(e), "type": type(e).__name__, "seconds": time.monotonic() - t0}


def killed_peer(rank, world, victim, timeout):
    """``victim`` dies after the hook is built; the survivors' next sync must raise within ``timeout``."""
    from hooks import LRSchedulerHook

    hook = LRSchedulerHook(cs.CosineAnnealingLR(optimizer(), 20), timeout=timeout)
    hook.step(1)
    if rank == victim:
        os._exit(17)
    time.sleep(0.5)
    t0 = time.monotonic()
    try:
        for n in range(2, 50):
            hook.step(n)
        return {"error": None, "seconds": time.monotonic() - t0}
    except Exception as e:  # the collective error
        return {"error": f"{type(e).__name__}: {e}"[:300], "seconds": time.monotonic() - t0}


def legacy_trainer(rank, world, epochs, attach_at_epoch):
    """ColossalAI's legacy Trainer on CPU with the hook registered; returns (cur_step, lr) per iteration."""
    from colossalai.legacy import initialize
    from colossalai.legacy.trainer import Trainer
    from colossalai.legacy.trainer import hooks as chooks

    from hooks import LRSchedulerHook
    from hooks.colossalai_compat import init_legacy_context

    init_legacy_context()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(5)]
    engine, loader, _, _ = initialize(model, opt, torch.nn.CrossEntropyLoss(), train_dataloader=data)
    sched = cs.CosineAnnealingWarmupLR(opt, 30, warmup_steps=3)
    seen = []

    class Record(chooks.BaseHook):
        def __init__(self):
            super().__init__(priority=10)

        def before_train_iter(self, trainer):
            seen.append((trainer.cur_step, opt.param_groups[0]["lr"]))

    trainer = Trainer(engine=engine)
    if attach_at_epoch:  # a late attach: the trainer resumes at an epoch with a fresh hook
        trainer.cur_epoch = attach_at_epoch
    hook = LRSchedulerHook(sched, by_epoch=False)
    trainer.fit(train_dataloader=loader, epochs=epochs, hooks=[hook, Record()], display_progress=False)
    return {"seen": seen, "expected": {n: sched.lr_at(n)[0] for n, _ in seen},
            "state_lr": trainer.states["metrics"]["train"]["LR"].get_last_step_value(), "final": sched.get_last_lr()[0]}


def booster_loop(rank, world, ckpt_dir, steps, resume_at):
    """A Booster (TorchDDPPlugin, gloo) loop stepping the hook on its global step; save/load via the booster."""
    from colossalai.booster import Booster
    from colossalai.booster.plugin import TorchDDPPlugin

    from hooks import LRSchedulerHook

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = cs.OneCycleLR(opt, steps)
    booster = Booster(plugin=TorchDDPPlugin())
    model, opt, criterion, _, sched = booster.boost(model, opt, torch.nn.MSELoss(), lr_scheduler=sched)
    hook = LRSchedulerHook(sched)
    start = 0
    if resume_at is not None:
        booster.load_lr_scheduler(hook, os.path.join(ckpt_dir, "lr_scheduler.pt"))
        start = hook.global_step
    seen = []
    for n in range(start, steps):
        hook.step(n)
        seen.append([g["lr"] for g in opt.param_groups])
        loss = criterion(model(torch.randn(8, 4)), torch.randn(8, 2))
        booster.backward(loss, opt)
        opt.step()
        opt.zero_grad()
        if resume_at is None and n + 1 == 6:
            hook.step(n + 1)
            booster.save_lr_scheduler(hook, os.path.join(ckpt_dir, "lr_scheduler.pt"))
    return {"seen": seen, "start": start, "expected": [sched.lr_at(n) for n in range(start, steps)]}


def booster_sharded(rank, world, ckpt_dir, phase):
    """Booster sharded save of model + optimizer with the hook state beside it; then load on every rank."""
    from colossalai.booster import Booster
    from colossalai.booster.plugin import TorchDDPPlugin

    from colossal_sched.checkpoint import load_booster_state, save_booster_state
    from hooks import LRSchedulerHook

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    sched = cs.CosineAnnealingWarmupLR(opt, 40, warmup_steps=4)
    booster = Booster(plugin=TorchDDPPlugin())
    model, opt, _, _, sched = booster.boost(model, opt, lr_scheduler=sched)
    hook = LRSchedulerHook(sched)
    if phase == "save":
        for n in range(13):
            hook.step(n)
            model(torch.randn(2, 4)).sum().backward()
            opt.step()
            opt.zero_grad()
        hook.step(13)
        booster.save_model(model, os.path.join(ckpt_dir, "model"), shard=True)
        booster.save_optimizer(opt, os.path.join(ckpt_dir, "optim"), shard=True)
        save_booster_state(hook, os.path.join(ckpt_dir, "model"), layout={"dp": world})
        return {"lr": sched.get_last_lr(), "files": sorted(os.listdir(os.path.join(ckpt_dir, "model")))}
    from hooks.colossalai_compat import allow_cpu_synchronize

    allow_cpu_synchronize()
    booster.load_model(model, os.path.join(ckpt_dir, "model"))
    booster.load_optimizer(opt, os.path.join(ckpt_dir, "optim"))
    load_booster_state(hook, os.path.join(ckpt_dir, "model"))
    return {"lr": sched.get_last_lr(), "step": hook.global_step, "opt_lr": [g["lr"] for g in opt.param_groups]}


def colossalai_save_lr_scheduler(rank, world, path, steps):
    """ColossalAI's own booster.save_lr_scheduler of a colossalai scheduler (the format to migrate from)."""
    from colossalai.booster import Booster
    from colossalai.booster.plugin import TorchDDPPlugin
    from colossalai.nn.lr_scheduler import CosineAnnealingWarmupLR

    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = CosineAnnealingWarmupLR(opt, 40, warmup_steps=4)
    booster = Booster(plugin=TorchDDPPlugin())
    model, opt, _, _, sched = booster.boost(model, opt, lr_scheduler=sched)
    for _ in range(steps):
        sched.step()
    booster.save_lr_scheduler(sched, path)
    return {"lr": sched.get_last_lr()}


def logging_rank0_only(rank, world, log_dir):
    """Each rank logs through a log_fn into its own file; only rank 0's may hold lines."""
    import json as _json

    from hooks import LRSchedulerHook

    path = os.path.join(log_dir, f"log_rank{rank}.jsonl")
    out = open(path, "w")
    hook = LRSchedulerHook(cs.OneCycleLR(optimizer(), 20), log_fn=lambda n, v: out.write(_json.dumps([n, v]) + "\n"))
    for n in range(6):
        hook.step(n)
    out.close()
    return sum(1 for _ in open(path))


def colossalai_groups(rank, world):
    """The hook syncs over ColossalAI's ProcessGroupMesh, and over a plugin-like object with dp/pp/tp groups."""
    from colossalai.cluster import ProcessGroupMesh

    from hooks import LRSchedulerHook

    pg_mesh = ProcessGroupMesh(2, 1, 2)  # dp, pp, tp
    groups = {name: pg_mesh.get_group_along_axis(axis) for axis, name in enumerate(("dp_group", "pp_group", "tp_group"))}
    plugin = type("Plugin", (), groups)()
    out = {}
    for label, group in (("ProcessGroupMesh", pg_mesh), ("plugin", plugin)):
        # the same schedule spec, but each rank's lr function gives other values: only the sync makes them agree
        hook = LRSchedulerHook(cs.LambdaLR(optimizer(), 20, lr_lambda=lambda t: 1.0 + rank), group=group)
        opt = hook.lr_scheduler.optimizer
        hook.step(5)
        out[label] = {"lrs": [g["lr"] for g in opt.param_groups], "ranks": hook.lr_sync.ranks,
                      "src": hook.lr_sync.src}
    return out


def late_process_group(rank, world):
    """Built while torch.distributed is down (as a config-first trainer might), the hook syncs once it is up."""
    from hooks import LRSchedulerHook

    from distributed import free_port

    port = [free_port() if rank == 0 else None]
    dist.broadcast_object_list(port, src=0)  # a fresh rendezvous for the second process group
    dist.destroy_process_group()
    opt = optimizer()
    hook = LRSchedulerHook(cs.LambdaLR(opt, 20, lr_lambda=lambda t: 1.0 + rank))  # only the sync makes them agree
    assert hook.lr_sync is None
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port[0]}")
    hook.step(4)
    return [g["lr"] for g in opt.param_groups]


def closed_and_rebuilt(rank, world, rounds):
    """Each round builds a hook on the same ranks, syncs twice and closes it (``with``): every round's group
    is a new one of the same ranks, which must not meet a closed one's addresses."""
    from hooks import LRSchedulerHook

    lrs = []
    for _ in range(rounds):
        with LRSchedulerHook(cs.CosineAnnealingLR(optimizer(), 20), timeout=10) as hook:
            hook.step(1)
            hook.step(2)
            lrs.append(hook.lr_scheduler.get_last_lr())
    return lrs
