"""Run a script many times on W ranks started as torchrun starts them, each run ending at a real interpreter exit.

Each run forks one process that hosts the job's store (torchrun's agent store) and W ranks with
torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT`` of that store,
``TORCHELASTIC_USE_AGENT_STORE=True``, ...). The ranks are forked from this interpreter, which has
imported torch once, so a run costs a fork instead of W + 2 interpreters importing torch; each rank
then runs the script as ``python script.py`` would (``runpy``, its globals kept until the interpreter
exits) and ends at the interpreter's own exit, where an abort at exit shows.

    python tests/forked_launch.py --world 2 --runs 30 SCRIPT [ARGS...]

prints one JSON line: ``{"runs", "world", "exits": [[code per rank] per run], "aborts", "failed", "seconds",
"tails": {run: last lines of a failed rank}}``; ``aborts`` counts runs with a ``terminate called`` line or a
SIGABRT, ``failed`` runs where any rank exited non-zero.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import runpy
import signal
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as torchrun sets it; also keeps this interpreter single-threaded
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402,F401  (imported once, before the forks)
import torch.distributed as dist  # noqa: E402

ABORT = "terminate called"


def _die_with_parent() -> None:
    """SIGKILL this forked process when the launcher dies (e.g. killed by a test's timeout): no orphans."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)


def _store_host(port_pipe: int) -> None:
    """The forked store host: torchrun's agent store, until the parent kills it."""
    _die_with_parent()
    store = dist.TCPStore("127.0.0.1", 0, None, is_master=True, wait_for_workers=False)
    os.write(port_pipe, f"{store.port}\n".encode())
    while True:
        signal.pause()


def _environment(rank: int, world: int, port: int, run: int) -> dict[str, str]:
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
            "GROUP_RANK": "0", "ROLE_RANK": str(rank), "ROLE_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port), "TORCHELASTIC_RESTART_COUNT": "0", "TORCHELASTIC_MAX_RESTARTS": "0",
            "TORCHELASTIC_RUN_ID": f"forked-{os.getpid()}-{run}", "TORCHELASTIC_USE_AGENT_STORE": "True"}


def _wait(pids: list[int], deadline: float) -> list[int]:
    """Exit codes (negative: the signal) of ``pids``; a rank still running at ``deadline`` is killed (-9)."""
    codes: dict[int, int] = {}
    while len(codes) < len(pids):
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            for pid in set(pids) - set(codes):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    return [codes[pid] for pid in pids]


def launch(world: int, runs: int, script: str, argv: list[str], out_dir: str, timeout: float):
    """The parent: a summary dict. A forked rank returns ``(output file, env)`` instead, to run the script."""
    exits, aborts, failed, tails = [], 0, 0, {}
    start = time.monotonic()
    for run in range(runs):
        r, w = os.pipe()
        host = os.fork()
        if host == 0:
            os.close(r)
            _store_host(w)
        os.close(w)
        with os.fdopen(r) as f:
            port = int(f.readline())
        outputs = [os.path.join(out_dir, f"run{run}.rank{rank}.log") for rank in range(world)]
        pids = []
        for rank in range(world):
            pid = os.fork()
            if pid == 0:
                _die_with_parent()
                return outputs[rank], _environment(rank, world, port, run)
            pids.append(pid)
        codes = _wait(pids, time.monotonic() + timeout)
        os.kill(host, signal.SIGKILL)
        os.waitpid(host, 0)
        texts = [open(path, errors="replace").read() for path in outputs]
        exits.append(codes)
        aborts += any(ABORT in t for t in texts) or -signal.SIGABRT in codes
        if any(codes):
            failed += 1
            tails[run] = {rank: t[-1500:] for rank, (t, c) in enumerate(zip(texts, codes)) if c or ABORT in t}
    return {"runs": runs, "world": world, "exits": exits, "aborts": aborts, "failed": failed,
            "seconds": round(time.monotonic() - start, 2), "tails": tails}


def main() -> tuple[str, list[str]] | None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a run may take before its ranks are killed")
    p.add_argument("--out-dir", default=None, help="where each rank's output goes (default: a temporary directory)")
    p.add_argument("--preload", action="append", default=[], help="modules to import before forking (e.g. hooks)")
    p.add_argument("--exec", action="store_true", help="each rank a fresh interpreter (as torchrun starts it; slower)")
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args()
    import importlib
    import tempfile

    for name in a.preload:
        importlib.import_module(name)
    gc.freeze()  # what the forks share stays shared: their collections skip it (copy-on-write stays cheap)
    out_dir = a.out_dir or tempfile.mkdtemp(prefix="forked_launch_")
    result = launch(a.world, a.runs, a.script, a.args, out_dir, a.timeout)
    if isinstance(result, dict):
        print(json.dumps(result), flush=True)
        return None
    output, env = result
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.update(env)
    if a.exec:
        os.execv(sys.executable, [sys.executable, a.script, *a.args])
    return a.script, a.args


if __name__ == "__main__":
    rank_job = main()
    if rank_job is not None:  # a forked rank: the script, as `python script.py`; its globals live until exit
        sys.argv = [rank_job[0], *rank_job[1]]
        sys.path[0] = os.path.dirname(os.path.abspath(rank_job[0]))
        SCRIPT_GLOBALS = runpy.run_path(rank_job[0], run_name="__main__")
