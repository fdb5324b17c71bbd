"""Issue #13: train.py across two torchrun agents ("nodes"), in two network namespaces, through torchrun's
elastic restarts and the loss of a node; every update's lr equals the closed form of the job's schedule
(``torchrun.closed_form``: train.py's own schedule at each step, what an uninterrupted single-node run writes)."""
import os
import subprocess
import time

import pytest

from multinode import RUN_MULTI_NODE, kill_tree, leftovers, netns_pair, start_nodes, wait_all
from torchrun import ROOT, closed_form, read_log

# one worker runs these one after another: two-node jobs side by side would starve each other's rendezvous heartbeats
pytestmark = [pytest.mark.xdist_group("multinode")]


TOTAL = 12
COMMON = ["--total-steps", TOTAL, "--warmup-steps", 3, "--scheduler", "CosineAnnealingWarmupLR",
          "--scheduler-arg", "eta_min=1e-5", "--log-every", 0]
LAYOUTS = {"dp2xtp2": ["--dp", 2, "--tp", 2], "dp2xpp2": ["--dp", 2, "--pp", 2]}


#: every update's lr: the closed form of the job's schedule, which an uninterrupted single-node run writes too
REFERENCE = closed_form(*COMMON, steps=range(TOTAL))


def check_every_rank(rows, steps, ranks, reference):
    """Each (step, rank) logged exactly once, all ranks equal at each step (and to ``reference``)."""
    seen = {}
    for r in rows:
        assert (r["step"], r["rank"]) not in seen, f"step {r['step']} logged twice by rank {r['rank']}"
        seen[r["step"], r["rank"]] = r["lr"]
    assert sorted(seen) == [(s, k) for s in steps for k in ranks], f"logged (step, rank): {sorted(seen)}"
    lrs = {}
    for (step, rank), lr in seen.items():
        expected = reference[step] if reference is not None else lrs.setdefault(step, lr)
        assert lr == expected, f"rank {rank} step {step}: lr {lr} != {expected}"
    return reference or lrs


def attempts(rows):
    """The rows of each attempt, per rank, split where a rank's step goes back (a restart)."""
    runs = {}
    for r in rows:
        per_rank = runs.setdefault(r["rank"], [[]])
        if per_rank[-1] and r["step"] <= per_rank[-1][-1]["step"]:
            per_rank.append([])
        per_rank[-1].append(r)
    return runs


def finish(nodes, workdir, timeout):
    """Wait for both agents, then fail if any process of the job outlived them (after killing it)."""
    try:
        codes = wait_all(nodes, timeout)
    finally:
        stray = leftovers(str(workdir))
    assert not stray, f"processes outlived the job (killed): {stray}"
    return codes


@pytest.mark.multiprocess
@pytest.mark.multinode
@pytest.mark.timeout(300)
@pytest.mark.parametrize("layout", ["dp2xtp2", "dp2xpp2"])
def test_two_nodes_give_every_rank_the_lr_of_the_schedule(tmp_path, layout):
    """dp2 x tp2 with two torchrun commands; dp2 x pp2 with launch_scripts/run_multi_node.sh on each node."""
    log = tmp_path / "lr.jsonl"
    if layout == "dp2xtp2":
        nodes = start_nodes(tmp_path, [*LAYOUTS[layout], *COMMON, "--lr-log", log])
    else:
        nodes = start_nodes(tmp_path, [*COMMON, "--lr-log", log],
                            script_env={"DP": 2, "PP": 2, "TP": 1, "CKPT_DIR": tmp_path / "ckpt"})
    codes = finish(nodes, tmp_path, 240)
    assert codes == [0, 0], "\n".join(n.log[-3000:] for n in nodes)
    check_every_rank(read_log(log), range(TOTAL), range(4), REFERENCE)
    assert "done: 12 updates" in nodes[0].log  # global rank 0 lives on node 0, ranks 2 and 3 on node 1
    if layout == "dp2xpp2":
        printed = [line for line in nodes[1].log.splitlines() if line.startswith("+ ")]
        assert printed and " -m torch.distributed.run --nnodes 2 --nproc-per-node 2 " in printed[0], nodes[1].log[:2000]


def test_multi_node_launcher_documents_its_arguments_and_uses_the_venv(tmp_path):
    helped = subprocess.run(["bash", RUN_MULTI_NODE, "--help"], capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0
    for name in ("NNODES", "NPROC", "RDZV_HOST", "RDZV_ID", "DP", "PP", "TP", "CKPT_DIR", "MAX_RESTARTS", "LOCAL_ADDR"):
        assert f"  {name}" in helped.stdout, name
    env = {k: v for k, v in os.environ.items() if k not in ("NNODES", "NPROC", "RDZV_HOST", "RDZV_ID", "DP", "CKPT_DIR", "PY")}
    missing = subprocess.run(["bash", RUN_MULTI_NODE], capture_output=True, text=True, env={**env, "NPROC": "2"}, timeout=30)
    assert missing.returncode == 2 and "set NNODES RDZV_HOST RDZV_ID DP CKPT_DIR" in missing.stderr
    # an invalid --nnodes makes torchrun refuse at once; what matters is the command printed before it
    bad = subprocess.run(["bash", RUN_MULTI_NODE], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**env, "NNODES": "0", "NPROC": "1", "RDZV_HOST": "127.0.0.1:1", "RDZV_ID": "x", "DP": "1",
                              "CKPT_DIR": str(tmp_path / "ckpt")})
    venv = os.path.join(ROOT, ".venv", "bin", "python")
    python = venv if os.path.exists(venv) else "python3"
    assert bad.stdout.startswith(f"+ {python} -m torch.distributed.run --nnodes 0 "), bad.stdout + bad.stderr
    assert bad.returncode != 0


@pytest.mark.multiprocess
@pytest.mark.multinode
@pytest.mark.timeout(300)
def test_two_nodes_in_two_network_namespaces(tmp_path):
    try:
        pair = netns_pair()
        netns = pair.__enter__()
    except OSError as e:
        print(f"SKIP reason: network namespaces unavailable: {e}")
        pytest.skip(f"network namespaces unavailable: {e}")
    try:
        log = tmp_path / "lr.jsonl"
        nodes = start_nodes(tmp_path, [*LAYOUTS["dp2xtp2"], *COMMON, "--lr-log", log], netns=netns)
        codes = finish(nodes, tmp_path, 240)
        assert codes == [0, 0], "\n".join(n.log[-3000:] for n in nodes)
    finally:
        pair.__exit__(None, None, None)
    assert not netns.exists(), "network namespaces left behind"
    check_every_rank(read_log(log), range(TOTAL), range(4), REFERENCE)


@pytest.mark.multiprocess
@pytest.mark.multinode
@pytest.mark.timeout(300)
def test_without_a_shared_filesystem_the_first_checkpoint_is_refused_on_every_rank(tmp_path):
    """A relative --ckpt-dir resolves in each node's own working directory, as on hosts without a shared
    filesystem: rank 0 finds node 1's shards missing, every rank refuses, nothing is published."""
    nodes = start_nodes(tmp_path, [*LAYOUTS["dp2xtp2"], *COMMON, "--ckpt-dir", "ckpt", "--save-every", 3])
    codes = finish(nodes, tmp_path, 240)
    assert 0 not in codes, codes
    for node in nodes:
        assert "storage files named in .metadata are missing: ['__2_0.distcp (missing)', '__3_0.distcp (missing)']" \
            in node.log, node.log[-3000:]
        assert sorted(os.listdir(os.path.join(node.cwd, "ckpt"))) in (["step_00000003.partial"],
                                                                    [".colossal_sched.lock", "step_00000003.partial"])


@pytest.mark.multiprocess
@pytest.mark.multinode
@pytest.mark.timeout(420)
@pytest.mark.parametrize("repeat", range(2))
def test_worker_killed_by_fault_is_restarted_and_resumes_exactly(tmp_path, repeat):
    """One worker ``os._exit``s before update 7 (rank 1 on node 0, then rank 3 on node 1); torchrun
    --max-restarts 2 restarts both nodes' workers, which resume from step 5 and finish."""
    reference = REFERENCE
    log, ckpt = tmp_path / "lr.jsonl", tmp_path / "ckpt"
    victim = [1, 3][repeat]
    nodes = start_nodes(tmp_path, [*LAYOUTS["dp2xtp2"], *COMMON, "--lr-log", log, "--ckpt-dir", ckpt, "--save-every", 5],
                        max_restarts=2, env={"COLOSSAL_SCHED_FAULT": f"exit_at_update=7,rank={victim}"})
    codes = finish(nodes, tmp_path, 300)
    assert codes == [0, 0], "\n".join(n.log[-4000:] for n in nodes)
    assert "resumed from" in nodes[0].log and "at step 5 on 4 ranks" in nodes[0].log, nodes[0].log[-3000:]
    runs = attempts(read_log(log))
    assert sorted(runs) == [0, 1, 2, 3]
    for rank, per_rank in runs.items():
        assert len(per_rank) == 2, f"rank {rank}: {len(per_rank)} attempts"
        first, second = per_rank
        # the victim stops before update 7; a peer may log update 7 before the collective that fails
        assert [r["step"] for r in first] in (list(range(7)), list(range(8))), f"rank {rank}: {[r['step'] for r in first]}"
        assert [r["step"] for r in second] == list(range(5, TOTAL))
        for r in first + second:
            assert r["lr"] == reference[r["step"]], f"rank {rank} step {r['step']}: {r['lr']} != {reference[r['step']]}"


@pytest.mark.multiprocess
@pytest.mark.multinode
@pytest.mark.timeout(420)
def test_node_loss_the_remaining_node_reforms_the_job_and_resumes_exactly(tmp_path):
    """``--nnodes 1:2``, dp=auto x tp2: node 1's whole tree is SIGKILLed while its ranks wait before update 8;
    node 0's agent restarts its workers as a world of 2 (dp1 x tp2), which resume from step 6."""
    reference = REFERENCE
    log, ckpt, faults = tmp_path / "lr.jsonl", tmp_path / "ckpt", tmp_path / "faults"
    faults.mkdir()
    nodes = start_nodes(tmp_path, ["--dp", "auto", "--tp", 2, *COMMON, "--lr-log", log, "--ckpt-dir", ckpt, "--save-every", 3],
                        nnodes="1:2", max_restarts=1,
                        env={"COLOSSAL_SCHED_FAULT": "pause_at_update=8,rank=2", "COLOSSAL_SCHED_FAULT_DIR": str(faults)})
    try:
        deadline = time.monotonic() + 200
        while not (faults / "paused.rank2").exists():
            assert time.monotonic() < deadline and nodes[0].proc.poll() is None, "\n".join(n.log[-3000:] for n in nodes)
            time.sleep(0.05)
        killed_at = time.monotonic()
        nodes[1].kill()
        assert not leftovers(str(tmp_path / "node1")), "node 1's processes survived SIGKILL of its tree"
        while len(attempts(read_log(log)).get(0, [])) < 2:  # the first update after the resume
            assert time.monotonic() < killed_at + 200 and nodes[0].proc.poll() is None, nodes[0].log[-4000:]
            time.sleep(0.05)
        resumed_after = time.monotonic() - killed_at
        codes = finish(nodes[:1], tmp_path, 240)
    finally:
        for n in nodes:
            kill_tree(n.proc.pid)
    assert codes == [0], nodes[0].log[-4000:]
    assert "at step 6 on 2 ranks (dp=1 pp=1 tp=2)" in nodes[0].log, nodes[0].log[-3000:]
    rows = read_log(log)
    runs = attempts(rows)
    for rank in (0, 1):
        assert [r["step"] for r in runs[rank][-1]] == list(range(6, TOTAL)), f"rank {rank} after the loss"
    for rank in (2, 3):
        assert len(runs[rank]) == 1 and runs[rank][0][-1]["step"] <= 8, f"rank {rank} ran after its node was killed"
    for r in rows:
        assert r["lr"] == reference[r["step"]], f"rank {r['rank']} step {r['step']}: {r['lr']} != {reference[r['step']]}"
    print(f"node loss: SIGKILL of node 1 -> first resumed update on node 0: {resumed_after:.1f} s")
