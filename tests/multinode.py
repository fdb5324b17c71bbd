"""Two torchrun agents as two nodes on one machine: on 127.0.0.1, or in two network namespaces.

Each agent runs ``launch_scripts/train.py`` from a working directory of its own, in a session of
its own (so the test can SIGKILL one "node" and its whole process tree), with its output in
``<cwd>/agent.log``. Every process a job starts carries the job's directory in its command line,
so :func:`leftovers` finds any that outlived it.
"""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time

import psutil

from distributed import free_port
from torchrun import ROOT

TRAIN = os.path.join(ROOT, "launch_scripts", "train.py")
RUN_MULTI_NODE = os.path.join(ROOT, "launch_scripts", "run_multi_node.sh")
# c10d rendezvous tuned for a test: quick heartbeats, so a dead node leaves the next round within
# about 2 s, and a 1 s last call before a round closes with fewer than the maximum of nodes.
RDZV_CONF = "last_call_timeout=1,keep_alive_interval=1,keep_alive_max_attempt=2,join_timeout=120"


class Node:
    """One torchrun agent (a "node"): its process, working directory and log."""

    def __init__(self, node_rank, cwd, proc):
        self.node_rank, self.cwd, self.proc = node_rank, cwd, proc

    @property
    def log(self):
        with open(os.path.join(self.cwd, "agent.log"), errors="replace") as f:
            return f.read()

    def kill(self):
        """SIGKILL the agent and every descendant (workers run in sessions of their own)."""
        kill_tree(self.proc.pid)
        self.proc.wait(timeout=60)


def kill_tree(pid):
    try:
        parent = psutil.Process(pid)
        victims = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for p in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=60)


def agent_command(node_rank, nnodes, nproc, endpoint, rdzv_id, train_args, max_restarts=0, local_addr=None):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc),
           "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", rdzv_id,
           # node 0 hosts the rendezvous store: decided here, not by which agent binds the port first
           "--rdzv-conf", f"is_host={int(node_rank == 0)},{RDZV_CONF}",
           "--max-restarts", str(max_restarts), "--monitor-interval", "0.2"]
    if local_addr:
        cmd += ["--local-addr", local_addr]
    return cmd + [TRAIN, *map(str, train_args)]


def start_nodes(workdir, train_args, nnodes=2, nproc=2, max_restarts=0, env=None, netns=None, script_env=None):
    """Start the agents of nodes 0 and 1, each in ``workdir/node<i>``.

    ``netns``: a :class:`NetnsPair`; each agent then runs in its own namespace and talks over the veth.
    ``env``: extra environment for both nodes (e.g. fault points).
    ``script_env``: start each node with ``launch_scripts/run_multi_node.sh`` as a user would, with these
    variables (DP, PP, TP, CKPT_DIR) besides the rendezvous ones; ``train_args`` are the script's extra flags.
    """
    port = free_port()
    host = netns.addrs[0] if netns else "127.0.0.1"
    rdzv_id = f"job{port}"
    nodes = []
    for i in range(2):
        cwd = os.path.join(str(workdir), f"node{i}")
        os.makedirs(cwd, exist_ok=True)
        node_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **(env or {})}
        cmd = agent_command(i, nnodes, nproc, f"{host}:{port}", rdzv_id, train_args, max_restarts,
                            local_addr=netns.addrs[i] if netns else None)
        if script_env is not None:
            node_env.update({k: str(v) for k, v in script_env.items()}, NNODES=str(nnodes), NPROC=str(nproc),
                            RDZV_HOST=f"{host}:{port}", RDZV_ID=rdzv_id, MAX_RESTARTS=str(max_restarts),
                            RDZV_CONF=f"is_host={int(i == 0)},{RDZV_CONF}")
            cmd = ["bash", RUN_MULTI_NODE, *map(str, train_args)]
        if netns:
            node_env["GLOO_SOCKET_IFNAME"] = netns.veths[i]
            cmd = ["ip", "netns", "exec", netns.names[i], *cmd]
        with open(os.path.join(cwd, "agent.log"), "w") as log:
            proc = subprocess.Popen(cmd, cwd=cwd, env=node_env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        nodes.append(Node(i, cwd, proc))
    return nodes


def wait_all(nodes, timeout):
    """Exit codes of every agent; on a hang past ``timeout`` kill every node's tree and fail."""
    deadline = time.monotonic() + timeout
    for node in nodes:
        try:
            node.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for n in nodes:
                n.kill()
            raise AssertionError(f"job still running after {timeout}s:\n" + "\n".join(n.log[-3000:] for n in nodes))
    return [node.proc.returncode for node in nodes]


def leftovers(marker):
    """Processes whose working directory is under ``marker`` or whose command line mentions it: killed, then returned."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error):
            mentions = any(marker in part for part in (p.info["cmdline"] or []))
            if p.pid != os.getpid() and (mentions or (p.info["cwd"] or "").startswith(marker)):
                found.append((p.pid, " ".join(p.info["cmdline"])[:200]))
                kill_tree(p.pid)
    return found


class NetnsPair:
    """Two network namespaces joined by a veth pair; addresses exist only inside them."""

    def __init__(self, tag):
        self.names = [f"cs13n{i}_{tag}" for i in range(2)]
        self.veths = [f"cs13v{i}_{tag}" for i in range(2)]  # <= 15 characters
        self.addrs = ["10.213.0.1", "10.213.0.2"]

    def create(self):
        ip = lambda *a: subprocess.run(["ip", *a], check=True, capture_output=True, text=True)  # noqa: E731
        for name in self.names:
            ip("netns", "add", name)
        ip("link", "add", self.veths[0], "type", "veth", "peer", "name", self.veths[1])
        for name, veth, addr in zip(self.names, self.veths, self.addrs):
            ip("link", "set", veth, "netns", name)
            ip("-n", name, "addr", "add", f"{addr}/24", "dev", veth)
            ip("-n", name, "link", "set", veth, "up")
            ip("-n", name, "link", "set", "lo", "up")

    def remove(self):
        """Kill anything still inside, then delete both namespaces (which deletes the veth pair)."""
        for name in self.names:
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
            for pid in pids:
                kill_tree(int(pid))
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.veths[0]], capture_output=True)  # only if it never moved

    def exists(self):
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return any(name in listed for name in self.names)


@contextlib.contextmanager
def netns_pair():
    """A :class:`NetnsPair`, removed in every outcome; raises OSError with the reason where it cannot be made."""
    if shutil.which("ip") is None:
        raise OSError("the `ip` command (iproute2) is not installed")
    pair = NetnsPair(os.getpid() % 100000)
    try:
        try:
            pair.create()
        except subprocess.CalledProcessError as e:
            raise OSError(f"`{' '.join(e.cmd)}` failed: {e.stderr.strip()}") from None
        yield pair
    finally:
        pair.remove()
