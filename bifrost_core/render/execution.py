"""Running one chunk's command on a GPU host: its GPU ids, its process, its log (Prefect-free).

`gpu_ids(host, count, total)` picks free GPU ids by per-id lock files (`flock`, which the
OS releases when the holder dies, even by kill -9), so overlapping chunks of one host never
share a GPU. `run(...)` starts the command in its own process group, tied to the calling
process (PR_SET_PDEATHSIG), with a log file, a timeout and a heartbeat thread that stops
the command as soon as the heartbeat answers False (the chunk was taken away or the job
cancelled).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class NoFreeGpu(RuntimeError):
    """Every GPU id of the host is locked: the slots and the locks disagree (should not happen)."""


def lock_root(home: Path) -> Path:
    return home / "gpus"


@contextlib.contextmanager
def gpu_ids(root: Path, host: str, count: int, total: int, *, wait: float = 30) -> Iterator[list[int]]:
    """Hold `count` of the host's GPU ids 0..total-1 (lock files under `root/<host>/`).

    The chunk already holds `count` slots of `gpu:<host>`, so free ids exist; a lock still
    held by a chunk that is ending is waited for a little."""
    folder = root / host
    folder.mkdir(parents=True, exist_ok=True)
    held: list[tuple[int, int]] = []
    deadline = time.monotonic() + wait
    try:
        while True:
            for gpu in range(total):
                if len(held) == count:
                    break
                if any(gpu == taken for taken, _ in held):
                    continue
                fd = os.open(folder / f"{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                held.append((gpu, fd))
            if len(held) == count:
                break
            if time.monotonic() > deadline:
                raise NoFreeGpu(f"{host}: {count} GPU(s) wanted, {len(held)} of {total} free")
            time.sleep(0.1)
        yield sorted(gpu for gpu, _ in held)
    finally:
        for _, fd in held:
            os.close(fd)  # closing the descriptor releases its lock


@dataclass
class Outcome:
    exit_code: int | None  # negative: the signal that ended it
    timed_out: bool = False
    stopped: bool = False  # the heartbeat said stop (job cancelled, chunk taken away)
    pid: int | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.stopped

    def describe(self) -> str:
        if self.timed_out:
            return "timed out"
        if self.stopped:
            return "stopped"
        return f"exit code {self.exit_code}"


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGKILL when the chunk's process dies, so a
    # renderer never outlives a chunk killed with -9 and renders on while the chunk is retried.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    timeout: float,
    heartbeat: Callable[[], bool],
    period: float,
    started: Callable[[int], None] | None = None,
) -> Outcome:
    """Run the command to its end, the timeout, or until `heartbeat()` returns False."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        try:
            process = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if os.name == "posix" and hasattr(os, "fork") else None,
            )
        except OSError as exc:
            log.write(f"cannot start the command: {exc}\n".encode())
            return Outcome(exit_code=127)
    if started is not None:
        started(process.pid)
    outcome = Outcome(exit_code=None, pid=process.pid)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(period):
            try:
                alive = heartbeat()
            except Exception:  # a database hiccup: try again next period, the command goes on
                continue
            if not alive:
                outcome.stopped = True
                _kill_group(process)
                return

    beating = threading.Thread(target=beat, name="chunk-heartbeat", daemon=True)
    beating.start()
    try:
        outcome.exit_code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        outcome.timed_out = True
        _kill_group(process)
    finally:
        done.set()
        beating.join()
        _kill_group(process)  # whatever the command left behind in its group
    if outcome.timed_out or outcome.stopped:
        outcome.exit_code = process.returncode
    return outcome


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def last_lines(path: str | Path | None, count: int = 20) -> list[str]:
    """The log's last lines (what a failure report shows)."""
    if not path:
        return []
    try:
        with open(path, errors="replace") as log:
            return [line.rstrip("\n") for line in deque(log, maxlen=count)]
    except OSError:
        return []
