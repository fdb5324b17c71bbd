"""The test session's forkserver: processes forked from one interpreter that imported torch once.

Starting a Python process that imports torch costs seconds of CPU on this project's 2 cores; the
suite starts hundreds. ``context()`` is a ``forkserver`` multiprocessing context whose server has
imported ``PRELOAD`` once: every process forked from it starts with them in memory, yet is a fresh
process (nothing a test did in another process, or in pytest's, is in it).

``run`` is ``subprocess.run`` for ``python -m MODULE ...``, ``python SCRIPT ...`` and ``python -c CODE``
executed in such a process: real file descriptors 1 and 2, the given working directory and
environment, ``sys.argv``, atexit handlers and the exit status as the interpreter would give them.
What it cannot show is a warning printed while a preloaded module is first imported: tests that
assert a clean stderr for a fresh interpreter keep ``subprocess.run``.
"""
import atexit
import os
import runpy
import subprocess
import sys
import tempfile
import traceback

#: imported once in the forkserver
PRELOAD = ["torch", "torch.distributed", "torch.distributed.checkpoint", "torch.distributed.device_mesh", "numpy",
           "colossal_sched", "colossal_sched.checkpoint", "colossal_sched.cli", "hooks",
           "workers", "agreement_workers", "checkpoint_workers", "replan_workers", "clock_workers", "plateau_workers",
           "range_workers"]
_context = None


def context():
    """The session's forkserver context, started once with ``PRELOAD`` imported and one OpenMP thread."""
    global _context
    if _context is None:
        import multiprocessing as mp
        from multiprocessing import forkserver

        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        saved = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"  # the forkserver's environment is every child's
        try:
            forkserver.ensure_running()
        finally:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS")
            else:
                os.environ["OMP_NUM_THREADS"] = saved
        _context = ctx
    return _context


def _redirect(fd, path):
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(target, fd)
    os.close(target)
    return open(fd, "w", closefd=False, encoding="utf-8", errors="backslashreplace")


def _main(args, cwd, env, out_path, err_path):
    """In the forked process: run ``args`` (``[python, -m|-c|SCRIPT, ...]``) as ``__main__``, then exit."""
    sys.stdout, sys.stderr = _redirect(1, out_path), _redirect(2, err_path)
    sys.stdin = open(os.devnull)
    if cwd is not None:
        os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    code = 0
    try:
        if args[1] == "-m":
            sys.argv = [args[2], *args[3:]]
            sys.path.insert(0, os.getcwd())
            sys.modules.pop(args[2], None)  # a preloaded module runs afresh as __main__, as in a new interpreter
            runpy.run_module(args[2], run_name="__main__", alter_sys=True)
        elif args[1] == "-c":
            sys.argv = ["-c", *args[3:]]
            sys.path.insert(0, "")
            exec(compile(args[2], "<string>", "exec"), {"__name__": "__main__"})
        else:
            sys.argv = list(args[1:])
            sys.path.insert(0, os.path.dirname(os.path.abspath(args[1])))
            runpy.run_path(args[1], run_name="__main__")
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run(args, capture_output=True, text=True, timeout=None, cwd=None, env=None):
    """``subprocess.run(args, capture_output=True, text=True, ...)`` in a process forked from ``context()``."""
    assert capture_output and text and args[0] == sys.executable, "forked.run captures text of `python ...` only"
    args = [str(a) for a in args]
    with tempfile.TemporaryDirectory() as d:
        out_path, err_path = os.path.join(d, "stdout"), os.path.join(d, "stderr")
        env = dict(os.environ if env is None else env)  # as subprocess: the caller's environment now
        proc = context().Process(target=_main, args=(args, None if cwd is None else str(cwd), env, out_path, err_path))
        proc.start()
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()
            proc.join()
            raise subprocess.TimeoutExpired(args, timeout)
        read = lambda path: open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else ""  # noqa: E731
        return subprocess.CompletedProcess(args, proc.exitcode, read(out_path), read(err_path))
