"""``colossal-sched find-lr``: the lr range test on launch_scripts/train.py's tiny LM, launched under torchrun."""
from __future__ import annotations

import argparse
import os
import runpy
import shlex
import subprocess
import sys
from typing import Any

from .errors import UsageError

#: launch_scripts/find_lr.py of the checkout this package is installed from (``pip install -e .``)
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launch_scripts", "find_lr.py")


def register(sub: Any, positive_int: Any) -> None:
    """Add ``find-lr`` to the subcommands; the flags it does not know pass on to the script (``passthrough``)."""
    p = sub.add_parser("find-lr", allow_abbrev=False, help="the lr range test on train.py's tiny LM, under torchrun",
                       description="Runs `torchrun --standalone --nproc_per_node N SCRIPT FLAGS`: every other flag is "
                                   "the script's (--start-lr, --end-lr, --num-updates, --mode, --plot FILE.png and "
                                   "train.py's model, mesh and data flags; see python SCRIPT --help).")
    p.add_argument("--nproc-per-node", type=positive_int, default=1, metavar="N", help="ranks (default 1)")
    p.add_argument("--script", default=SCRIPT, help="launch_scripts/find_lr.py of a checkout (default: this one's)")
    p.set_defaults(fn=cmd_find_lr, passthrough=True)


def pass_on(args: argparse.Namespace, rest: list[str]) -> argparse.Namespace:
    """``args`` with ``rest``, the flags no parser knew, for a ``passthrough`` subcommand; else a UsageError."""
    if rest and not getattr(args, "passthrough", False):
        raise UsageError(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    return args


def command(args: argparse.Namespace) -> list[str]:
    """The torchrun command ``find-lr`` runs."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc_per_node),
            args.script, *args.rest]


def cmd_find_lr(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.script):
        raise UsageError(f"--script: no such file {args.script!r}; give the path of launch_scripts/find_lr.py")
    try:  # the script's own checks first, in this process: a refusal is its one line and status 2, no torchrun
        runpy.run_path(args.script, run_name="find_lr")["parse_args"](args.rest)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    cmd = command(args)
    print("+ " + shlex.join(cmd), file=sys.stderr, flush=True)
    return subprocess.call(cmd, env={"OMP_NUM_THREADS": "1", **os.environ})  # torchrun's default, without its notice
