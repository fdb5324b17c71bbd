"""Recompiles of a ``torch.compile``'d ``opt.step`` under a colossal_sched scheduler: tensor lr vs float lr.

colossal_sched writes a tensor lr in place (``fill_``), so the compiled step's guards hold and the count of
recompiles after the first compile is 0; a float lr that changes is a Python constant in the graph and
recompiles (PyTorch tutorial "Running the compiled optimizer with an LR Scheduler"): on every change with
automatic dynamic shapes off, once where dynamo then makes the float symbolic (the default). Counts come from dynamo's
counters in the same run; the script also checks that the lr tensor stays the same object and holds
``get_last_lr()`` after every step. The lr and a scheduled weight decay (``for_key``) move together through
``LRSchedulerHook.step``. With CUDA it adds the tensor case on the device with ``capturable=True`` and counts
host-device synchronisations per ``hook.step`` (goal 0; the synced hook on 2 ranks: ``bench_cuda_sync.py``).

    python bench/bench_compile.py [--steps 50] [--backend inductor]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch._dynamo
from bench_cuda_sync import syncs

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(mode: str, steps: int, backend: str, device: str = "cpu", automatic_dynamic: bool = True) -> dict:
    """``steps`` updates of a compiled Adam step under CosineAnnealingWarmupLR; dynamo's counts and the wall time."""
    import colossal_sched as cs
    from hooks import LRSchedulerHook
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch._dynamo.config.automatic_dynamic_shapes = automatic_dynamic
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64, device=device)
    tensor_lr = mode != "float"
    lr = torch.tensor(0.01, device=device) if tensor_lr else 0.01
    wd = torch.tensor(0.1, device=device) if tensor_lr else 0.1  # a scheduled weight decay: the same in-place rule
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd, capturable=device == "cuda")
    sched = cs.CosineAnnealingWarmupLR(opt, total_steps=steps, warmup_steps=steps // 5).add_schedules(
        cs.CosineAnnealingLR.for_key("weight_decay", opt, steps, eta_min=0.01))
    hook = LRSchedulerHook(sched)  # one process: no sync (bench_cuda_sync.py measures the synced hook on 2 ranks)
    held, held_wd = opt.param_groups[0]["lr"], opt.param_groups[0]["weight_decay"]
    host_syncs = 0
    x = torch.randn(16, 64, device=device)

    @torch.compile(backend=backend, fullgraph=False)
    def step():
        opt.step()

    t0 = time.perf_counter()
    first = None
    for n in range(steps):
        model(x).square().mean().backward()
        step()
        opt.zero_grad(set_to_none=False)
        if first is None:
            first = (counters["stats"]["unique_graphs"], counters["frames"]["total"])
            t1 = time.perf_counter()
        if device == "cuda":
            host_syncs += syncs(lambda: hook.step(n + 1))
        else:
            hook.step(n + 1)
        group_lr = opt.param_groups[0]["lr"]
        want = sched.get_last_lr()[0]
        if tensor_lr:
            assert group_lr is held and opt.param_groups[0]["weight_decay"] is held_wd, "a tensor was replaced"
            assert group_lr.item() == float(torch.tensor(want, dtype=group_lr.dtype)), (n, group_lr, want)
        else:
            assert group_lr == want, (n, group_lr, want)
    if device == "cuda":
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    torch._dynamo.config.automatic_dynamic_shapes = True
    graphs, frames = counters["stats"]["unique_graphs"], counters["frames"]["total"]
    return {"mode": mode + ("" if automatic_dynamic else ", automatic dynamic off"), "device": device, "graphs": graphs,
            "graphs_after": graphs - first[0], "frames_after": frames - first[1], "first": t1 - t0,
            "later": (t2 - t1) / max(steps - 1, 1) * 1e3, "host_syncs": host_syncs / steps if device == "cuda" else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--backend", default="inductor")
    args = p.parse_args()
    # with automatic dynamic off a float lr recompiles once per new value: let it, so the count shows (the default limit, 8, would stop
    # recompiling and fall back to eager, hiding the cost)
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, args.steps + 8)
    if hasattr(torch._dynamo.config, "recompile_limit"):
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, args.steps + 8)
    rows = [run("tensor", args.steps, args.backend), run("float", args.steps, args.backend),
            run("float", args.steps, args.backend, automatic_dynamic=False)]
    if torch.cuda.is_available():
        rows.append(run("tensor", args.steps, args.backend, "cuda"))
    print(f"torch {torch.__version__}, backend {args.backend}, AdamW on Linear(64, 64), CosineAnnealingWarmupLR + a weight-decay schedule, "
          f"{args.steps} updates, lr changing every update")
    print("| lr | device | graphs | new graphs after the first step | frames compiled after the first step | "
          "first step (s) | later steps (ms/update) | host-device syncs per hook.step |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        host = "n/a (cpu)" if r["host_syncs"] is None else f"{r['host_syncs']:.2f}"
        print(f"| {r['mode']} | {r['device']} | {r['graphs']} | {r['graphs_after']} | {r['frames_after']} | "
              f"{r['first']:.1f} | {r['later']:.1f} | {host} |")


if __name__ == "__main__":
    main()
