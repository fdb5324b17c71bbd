"""Start launch_scripts/train.py under torchrun as a user would, and read its lr log."""
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command(nproc, *args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            os.path.join(ROOT, "launch_scripts", "train.py"), *map(str, args)]


def environment(faults=None, fault_dir=None):
    """The workers' environment; ``faults``: ``COLOSSAL_SCHED_FAULT`` (see launch_scripts/faults.py)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("COLOSSAL_SCHED_FAULT", None)
    if faults:
        env["COLOSSAL_SCHED_FAULT"] = faults
    if fault_dir is not None:
        env["COLOSSAL_SCHED_FAULT_DIR"] = str(fault_dir)
    return env


def train(nproc, *args, timeout=300, faults=None, fault_dir=None):
    """Run the job to its end; past ``timeout`` every process of its tree is killed (none outlives the test)."""
    return run_job(command(nproc, *args), environment(faults, fault_dir), timeout)


def run_job(cmd, env, timeout):
    """``subprocess.run(cmd, capture_output=True, text=True)`` for a torchrun job: past ``timeout`` (or on
    pytest-timeout's interrupt) the agent and every worker are killed, not only the agent."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:  # the timeout, or pytest-timeout's interrupt
        kill_job(proc)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def start(nproc, *args, faults=None, fault_dir=None):
    return subprocess.Popen(command(nproc, *args), cwd=ROOT, env=environment(faults, fault_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def ended_early(proc):
    """What a job that ended too soon printed: its workers' error lines first (torchrun's summary buries them)."""
    out = proc.stdout.read()
    errors = [line for line in out.splitlines() if "Error" in line and "ChildFailedError" not in line][:20]
    return "job ended early:\n" + "\n".join(errors) + "\n...\n" + out[-3000:]


def wait_for_pause(fault_dir, ranks, proc, timeout=240):
    """Wait until every rank in ``ranks`` wrote its ``paused.rank<R>`` marker (``pause_at_update``)."""
    deadline = time.monotonic() + timeout
    markers = [os.path.join(str(fault_dir), f"paused.rank{r}") for r in ranks]
    while time.monotonic() < deadline:
        if all(os.path.exists(m) for m in markers):
            return
        assert proc.poll() is None, ended_early(proc)
        time.sleep(0.1)
    raise AssertionError(f"ranks {list(ranks)} never paused")


def kill_job(proc):
    """SIGKILL torchrun and every worker (torchrun starts workers in sessions of their own)."""
    import psutil

    parent = psutil.Process(proc.pid)
    victims = parent.children(recursive=True) + [parent]
    for p in victims:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=60)
    proc.wait(timeout=60)


def wait_for_step(log_path, step, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(log_path) and any(r["step"] >= step for r in read_log(log_path)):
            return
        assert proc.poll() is None, ended_early(proc)
        time.sleep(0.2)
    raise AssertionError(f"step {step} never logged")


def read_log(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.endswith("\n"):  # a killed job may leave a torn last line
                rows.append(json.loads(line))
    return rows


def closed_form(*args, steps):
    """``{step: lrs}``: ``lr_at`` of the schedule train.py builds from ``args`` (its own ``parse_args`` and
    ``build_scheduler``; layout flags left out), what every rank of an uninterrupted run writes at each update
    (tests/test_replan.py and test_hooks_distributed.py check that of real runs)."""
    import torch

    from launch_scripts import train as script

    parsed = script.parse_args([*map(str, args), "--ckpt-dir", "unused"])  # so that --save-every parses; nothing is written
    stand_in = torch.optim.AdamW(script.param_groups(torch.nn.Linear(1, 1), parsed.lr), lr=parsed.lr)
    sched = script.build_scheduler(parsed, stand_in)
    return {step: sched.lr_at(step) for step in steps}


def lrs_by_step(rows):
    """{step: {rank: lr}}."""
    out = {}
    for r in rows:
        out.setdefault(r["step"], {})[r["rank"]] = r["lr"]
    return out
