"""Recompiles of a ``torch.compile``'d ``opt.step`` under a colossal_sched scheduler: tensor lr vs float lr.

colossal_sched writes a tensor lr in place (``fill_``), so the compiled step's guards hold and the count of
recompiles after the first compile is 0; a float lr that changes is a Python constant in the graph and
recompiles (PyTorch tutorial "Running the compiled optimizer with an LR Scheduler"): on every change with
automatic dynamic shapes off, once where dynamo then makes the float symbolic (the default). Counts come from dynamo's
counters in the same run; the script also checks that the lr tensor stays the same object and holds
``get_last_lr()`` after every step. With CUDA it adds the tensor-lr case on the device with ``capturable=True``.

    python bench/bench_compile.py [--steps 50] [--backend inductor]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch._dynamo

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(mode: str, steps: int, backend: str, device: str = "cpu", automatic_dynamic: bool = True) -> dict:
    """``steps`` updates of a compiled Adam step under CosineAnnealingWarmupLR; dynamo's counts and the wall time."""
    import colossal_sched as cs
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch._dynamo.config.automatic_dynamic_shapes = automatic_dynamic
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64, device=device)
    tensor_lr = mode != "float"
    lr = torch.tensor(0.01, device=device) if tensor_lr else 0.01
    opt = torch.optim.Adam(model.parameters(), lr=lr, capturable=device == "cuda")
    sched = cs.CosineAnnealingWarmupLR(opt, total_steps=steps, warmup_steps=steps // 5)
    held = opt.param_groups[0]["lr"]
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
        sched.step()
        group_lr = opt.param_groups[0]["lr"]
        want = sched.get_last_lr()[0]
        if tensor_lr:
            assert group_lr is held, "the lr tensor was replaced"
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
            "later": (t2 - t1) / max(steps - 1, 1) * 1e3}


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
    print(f"torch {torch.__version__}, backend {args.backend}, Adam on Linear(64, 64), CosineAnnealingWarmupLR, "
          f"{args.steps} updates, lr changing every update")
    print("| lr | device | graphs | new graphs after the first step | frames compiled after the first step | "
          "first step (s) | later steps (ms/update) |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['device']} | {r['graphs']} | {r['graphs_after']} | {r['frames_after']} | "
              f"{r['first']:.1f} | {r['later']:.1f} |")


if __name__ == "__main__":
    main()
