"""Run a function on N real processes joined by gloo on 127.0.0.1, and collect what each returns.

The ranks are forked from the session's forkserver (``forked.context()``), which imported torch,
colossal_sched, hooks and the test workers once: a world starts in about a second, where spawning
fresh interpreters cost several seconds a test on 2 cores. Every ``run`` still gets fresh processes
and a fresh gloo group on a new port, so a test that kills, hangs or breaks a rank leaves nothing behind.
"""
import json
import os
import socket
import time
import traceback
from datetime import timedelta

from forked import context

_progress_dir = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mark(scenario):
    """Record that this rank entered ``scenario``: a hang is reported with the scenario each rank was in."""
    if _progress_dir is not None:
        with open(os.path.join(_progress_dir, f"rank{os.environ['RANK']}.at"), "w") as f:
            f.write(scenario)


def _entry(rank, world, port, target, args, outdir, dist_timeout):
    global _progress_dir
    _progress_dir = outdir
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    result = {}
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}",
                                timeout=timedelta(seconds=dist_timeout))
        result = {"ok": target(rank, world, *args)}
    except BaseException as e:  # reported to the parent, which fails the test
        result = {"error": f"{type(e).__name__}: {e}", "type": type(e).__name__, "traceback": traceback.format_exc()}
    with open(os.path.join(outdir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    try:
        if dist.is_initialized() and "error" not in result:
            dist.destroy_process_group()
    finally:
        os._exit(0)


def _where(outdir, rank):
    path = os.path.join(outdir, f"rank{rank}.at")
    return open(path).read() if os.path.exists(path) else "before any scenario"


def run(world, target, *args, tmp_path, timeout=120, dist_timeout=60, allow_errors=False):
    """Results per rank (``{"ok": value}`` or ``{"error": ...}``); fails on a hang past ``timeout``."""
    outdir = str(tmp_path)
    os.makedirs(outdir, exist_ok=True)
    port = free_port()
    ctx = context()
    procs = [ctx.Process(target=_entry, args=(r, world, port, target, args, outdir, dist_timeout)) for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    name = f"{target.__module__}.{target.__name__}"
    assert not hung, f"{name}: ranks {hung} still running after {timeout}s (hang), in: " + \
        "; ".join(f"rank {r}: {_where(outdir, r)}" for r in hung)
    results = []
    for r in range(world):
        path = os.path.join(outdir, f"rank{r}.json")
        results.append(json.load(open(path)) if os.path.exists(path) else {"error": "no result (process died)"})
    if not allow_errors:
        errors = {r: res["traceback"] if "traceback" in res else res["error"] for r, res in enumerate(results) if "error" in res}
        assert not errors, "\n".join(f"{name} rank {r}: {e}" for r, e in errors.items())
        return [res["ok"] for res in results]
    return results
