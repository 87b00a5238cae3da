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
    """The host's GPU ids stayed locked for longer than the wait."""


class ChunkNotWanted(RuntimeError):
    """A chunk waiting for its GPUs was cancelled or taken away meanwhile."""


def lock_root(home: Path) -> Path:
    return home / "gpus"


@contextlib.contextmanager
def gpu_ids(
    root: Path,
    host: str,
    count: int,
    total: int,
    *,
    wait: float | None = 30,
    wanted: Callable[[], bool] | None = None,
    ask_every: float = 2.0,
) -> Iterator[list[int]]:
    """Hold `count` of the host's GPU ids 0..total-1 (lock files under `root/<host>/`).

    All or none: ids taken while fewer than `count` are free are let go again, so two
    multi-GPU chunks never each hold a part and wait on each other. A chunk dispatched ahead
    (its process started while the host is busy) waits here, `wait` seconds or for ever
    (None), asking `wanted()` every `ask_every` seconds whether it should still run; the lock of a
    chunk that ends is free at once, so the wait ends within a poll (0.1 s). NoFreeGpu when
    the wait runs out; ChunkNotWanted when `wanted()` says no."""
    folder = root / host
    folder.mkdir(parents=True, exist_ok=True)
    held: list[tuple[int, int]] = []
    deadline = None if wait is None else time.monotonic() + wait
    asked: float | None = None  # asked at once when the ids are busy, then every few seconds
    try:
        while True:
            for gpu in range(total):
                if len(held) == count:
                    break
                fd = os.open(folder / f"{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                held.append((gpu, fd))
            if len(held) == count:
                break
            _release(held)
            if deadline is not None and time.monotonic() > deadline:
                raise NoFreeGpu(f"{host}: {count} GPU(s) wanted, fewer of {total} free")
            if wanted is not None and (asked is None or time.monotonic() - asked > ask_every):
                asked = time.monotonic()
                if not wanted():
                    raise ChunkNotWanted(f"{host}: the chunk waiting for {count} GPU(s) is no longer wanted")
            time.sleep(0.1)
        yield sorted(gpu for gpu, _ in held)
    finally:
        _release(held)


def _release(held: list[tuple[int, int]]) -> None:
    for _, fd in held:
        os.close(fd)  # closing the descriptor releases its lock
    held.clear()


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
