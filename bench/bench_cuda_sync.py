"""Host-device synchronisations per ``hook.step`` on a CUDA model (a GPU check; prints counts, asserts nothing).

Two ranks share one GPU (gloo default group: NCCL refuses two ranks on one device; the hook's sync runs on
its own gloo side group either way). Each rank trains a model on ``cuda`` with AdamW, once with float lrs
and once with tensor lrs on the device (``capturable=True``), with the hook's sync off and on. torch
reports every synchronisation (``torch.cuda.set_sync_debug_mode("warn")``): the script counts them per
``hook.step`` and, as the reference, per ``opt.step``. Goal: 0 per ``hook.step`` (the sync's collective is
on host memory only).

    python bench/bench_cuda_sync.py [--steps 20]
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import warnings

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def syncs(fn) -> int:
    """How many synchronisations torch reports while ``fn()`` runs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def case(tensor_lr: bool, sync: bool, steps: int) -> dict:
    import colossal_sched as cs
    from hooks import LRSchedulerHook

    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64, device="cuda")
    lr = torch.tensor(1e-3, device="cuda") if tensor_lr else 1e-3
    opt = torch.optim.AdamW(model.parameters(), lr=lr, capturable=tensor_lr)
    hook = LRSchedulerHook(cs.CosineAnnealingWarmupLR(opt, total_steps=steps + 10, warmup_steps=5), sync=sync)
    x = torch.randn(32, 64, device="cuda")
    hook_syncs = opt_syncs = 0
    for n in range(steps + 2):
        counted = n >= 2  # the first calls connect the hook and warm up the kernels
        h = syncs(lambda: hook.step(n))
        model(x).square().mean().backward()
        o = syncs(opt.step)
        opt.zero_grad(set_to_none=False)
        if counted:
            hook_syncs, opt_syncs = hook_syncs + h, opt_syncs + o
    torch.cuda.synchronize()
    held = opt.param_groups[0]["lr"]
    expected = hook.lr_scheduler.lr_at(steps + 1)[0]
    if tensor_lr:  # the tensor's own dtype (torch.tensor(1e-3) is float32) rounds what is written
        expected = float(torch.tensor(expected, dtype=lr.dtype))
    return {"hook": hook_syncs / steps, "opt": opt_syncs / steps, "lr": float(held), "expected": expected,
            "same_tensor": held is lr if tensor_lr else None,
            "dtype": str(held.dtype).replace("torch.", "") if tensor_lr else "float"}


def worker(rank: int, world: int, port: int, steps: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    x = torch.ones(4, device="cuda")
    control = syncs(lambda: x.sum().item())  # the counter works: .item() on a device tensor is one sync
    rows = {(t, s): case(t, s, steps) for t in (False, True) for s in (False, True)}
    rows["control"] = control
    if rank == 0:
        out.put(rows)
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, 2, port, args.steps, out)) for r in range(2)]
    for proc in procs:
        proc.start()
    rows = out.get(timeout=600)
    for proc in procs:
        proc.join()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, 2 ranks on one GPU, {args.steps} updates each; "
          f"control: x.sum().item() counted {rows.pop('control')} sync(s)")
    print("| lr | hook sync | syncs per hook.step | syncs per opt.step | lr written = lr_at | same tensor object |\n"
          "|---|---|---|---|---|---|")
    for (tensor_lr, sync), r in rows.items():
        print(f"| {r['dtype']} | {'on' if sync else 'off'} | {r['hook']:.2f} | {r['opt']:.2f} | {r['lr'] == r['expected']} "
              f"| {r['same_tensor']} |")


if __name__ == "__main__":
    main()
