"""One run per checkpoint directory: ``<dir>/.colossal_sched.lock``, taken by rank 0 with an atomic create
(``O_CREAT | O_EXCL``), its mtime a heartbeat refreshed every ``lease_s / 4`` seconds; every rank learns the
outcome in one collective. When a lock counts as stale (its process gone, or no heartbeat for ``lease_s``) or
as this run's own (same ``run_id``): README's "One run per checkpoint directory".
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from . import _validate as V
from .errors import CheckpointError
from .ckpt_agreement import agree, is_coordinator
from .teardown import close_at_exit

log = logging.getLogger("colossal_sched")

LOCK_FILE = ".colossal_sched.lock"
DEFAULT_LEASE_S = 300.0
_PROCESS_RUN_ID = uuid.uuid4().hex


def default_run_id() -> str:
    """torchrun's ``TORCHELASTIC_RUN_ID`` (shared by every attempt of one job), else one id per process."""
    rid = os.environ.get("TORCHELASTIC_RUN_ID", "")
    return f"torchrun:{rid}" if rid and rid != "none" else f"process:{_PROCESS_RUN_ID}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists (another user's), or not a pid we can judge
    return True


class RunLock:
    """The lock of ``checkpoint_dir`` for this run (see the module docstring).

    Args:
        checkpoint_dir: the directory of ``step_XXXXXXXX`` checkpoints (created if missing).
        run_id: who this run is; a lock with the same id is this run's own. Default :func:`default_run_id`.
        lease_s: a lock whose heartbeat is older than this is stale (seconds, > 0).

    Use ``lock = RunLock(dir).acquire()`` on every rank (a collective once ``torch.distributed`` is
    initialised) and pass it to :func:`colossal_sched.checkpoint.save_dcp`. It is released at interpreter
    exit (``atexit``), or earlier by ``lock.release()`` or as a context manager.
    """

    def __init__(self, checkpoint_dir: str, run_id: str | None = None, lease_s: float = DEFAULT_LEASE_S) -> None:
        if not isinstance(checkpoint_dir, (str, os.PathLike)):
            raise V.ArgumentTypeError(f"checkpoint_dir must be a path, got {V.short(checkpoint_dir)}")
        self.checkpoint_dir = os.fspath(checkpoint_dir)
        self.path = os.path.join(self.checkpoint_dir, LOCK_FILE)
        if run_id is not None and (not isinstance(run_id, str) or not run_id or len(run_id) > 200):
            raise V.ArgumentTypeError(f"run_id must be a non-empty str of at most 200 characters, got {V.short(run_id)}")
        self.run_id = run_id or default_run_id()
        self.lease_s = V.real("lease_s", lease_s, low=0.0, low_open=True)
        self.held = False
        self._token = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._release_at_exit: Any = None

    # -------------------------------------------------------------- collective
    def acquire(self, group: Any = None) -> "RunLock":
        """Take the lock on rank 0; every rank returns, or every rank raises the same :class:`CheckpointError`."""
        error = None
        if is_coordinator():
            try:
                self._take()
            except (CheckpointError, OSError) as e:
                error = str(e) if isinstance(e, CheckpointError) else f"cannot create {self.path}: {e}"
        try:
            agree("the run lock", [], error=error, group=group)
        except BaseException:
            self.release()
            raise
        if self._release_at_exit is None:
            self._release_at_exit = close_at_exit(self.release)
        return self

    # ------------------------------------------------------------- rank 0 only
    def owner(self) -> dict[str, Any] | None:
        """The lock file's record (``{}`` if unreadable, None if there is no lock)."""
        try:
            with open(self.path, "rb") as f:
                data = f.read(4096)
        except FileNotFoundError:
            return None
        try:
            record = json.loads(data)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def verify(self) -> None:
        """Raise :class:`CheckpointError` if this run no longer holds the lock (coordinator only; else a no-op)."""
        if not is_coordinator():
            return
        record = self.owner()
        if not self.held or record is None or record.get("token") != self._token:
            raise CheckpointError(f"this run no longer holds the lock of {self.checkpoint_dir} "
                                  f"(now: {self._describe(record)}); refusing to publish a checkpoint")

    def release(self) -> None:
        """Remove the lock file if it is still this run's, and stop the heartbeat."""
        if self._release_at_exit is not None:
            atexit.unregister(self._release_at_exit)
            self._release_at_exit = None
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self.held:
            record = self.owner()
            if record is not None and record.get("token") == self._token:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def _take(self) -> None:
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        for _ in range(3):
            if self._create():
                return
            record = self.owner()
            if record is None:
                continue  # released meanwhile: try again
            why = self._stale(record)
            if why is None:
                raise CheckpointError(f"{self.checkpoint_dir} is in use by another run: {self._describe(record)}; "
                                      f"stop it or use another directory (stale after {self.lease_s:g} s without "
                                      "heartbeat, or once its process is gone)")
            if self._remove_stale(record):
                if record.get("run_id") == self.run_id:
                    log.info("taking back this run's own lock of %s (%s)", self.checkpoint_dir, why)
                else:
                    log.warning("taking over the stale lock of %s: %s (%s)", self.checkpoint_dir,
                                self._describe(record), why)
        raise CheckpointError(f"could not take the lock of {self.checkpoint_dir}: another run keeps taking it "
                              f"({self._describe(self.owner())})")

    def _create(self) -> bool:
        token = uuid.uuid4().hex
        record = {"run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(), "start_time": time.time(),
                  "token": token, "lease_s": self.lease_s}
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        self._token, self.held = token, True
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="colossal_sched-lock-heartbeat", daemon=True)
        self._thread.start()
        return True

    def _stale(self, record: dict[str, Any]) -> str | None:
        """Why ``record``'s lock may be taken over, or None if it is live."""
        if record.get("run_id") == self.run_id:
            return "the same run id"
        pid, host = record.get("pid"), record.get("host")
        if host == socket.gethostname() and type(pid) is int and pid > 0 and not _pid_alive(pid):
            return f"its process {pid} is gone"
        try:
            age = time.time() - os.stat(self.path).st_mtime
        except FileNotFoundError:
            return "released"
        if age > self.lease_s:
            return f"no heartbeat for {age:.0f} s (lease {self.lease_s:g} s)"
        return None

    def _remove_stale(self, record: dict[str, Any]) -> bool:
        """Move the stale lock aside atomically; put it back if another run replaced it meanwhile."""
        aside = f"{self.path}.stale.{uuid.uuid4().hex}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            with open(aside, "rb") as f:
                moved = json.loads(f.read(4096) or b"{}")
        except ValueError:
            moved = {}
        if moved != record:  # a fresh lock, created after we read the stale one: give it back
            try:
                os.link(aside, self.path)
            except OSError:
                pass
        os.unlink(aside)
        return moved == record

    def _heartbeat(self) -> None:
        period = max(self.lease_s / 4, 0.05)
        while not self._stop.wait(period):
            record = self.owner()
            if record is None or record.get("token") != self._token:
                log.warning("lost the lock of %s (now: %s)", self.checkpoint_dir, self._describe(record))
                return
            try:
                os.utime(self.path)
            except OSError:
                pass

    def _describe(self, record: dict[str, Any] | None) -> str:
        if record is None:
            return "no lock"
        if not record:
            return f"an unreadable lock file {self.path}"
        started = record.get("start_time")
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if isinstance(started, (int, float)) else "?"
        def field(key: str, limit: int = 80) -> str:
            text = str(record.get(key, "?"))
            return text if len(text) <= limit else text[:limit] + "..."

        return f"run {field('run_id')} (pid {field('pid', 20)} on {field('host')}, started {when})"


__all__ = ["RunLock", "LOCK_FILE", "DEFAULT_LEASE_S", "default_run_id"]
