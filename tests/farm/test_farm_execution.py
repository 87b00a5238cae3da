"""Running a chunk's command, without Prefect: GPU id locks, timeout, stop, log."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from bifrost_core.render import execution

SLEEPER = [sys.executable, "-c", "import time, sys; print('started', flush=True); time.sleep(60)"]


def test_overlapping_holders_get_distinct_gpu_ids(tmp_path: Path) -> None:
    with execution.gpu_ids(tmp_path, "h", 1, 3) as first, execution.gpu_ids(tmp_path, "h", 2, 3) as second:
        assert len(first) == 1 and len(second) == 2
        assert not set(first) & set(second)
        with pytest.raises(execution.NoFreeGpu), execution.gpu_ids(tmp_path, "h", 1, 3, wait=0.2):
            pass
    with execution.gpu_ids(tmp_path, "h", 3, 3) as every:  # released on exit
        assert every == [0, 1, 2]


def test_a_command_that_succeeds_is_logged(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "chunk-0.1.log"
    outcome = execution.run(
        [sys.executable, "-c", "print('frame 1')"],
        env={},
        log_path=log,
        timeout=30,
        heartbeat=lambda: True,
        period=0.1,
    )
    assert outcome.succeeded and outcome.exit_code == 0
    assert execution.last_lines(log)[-1] == "frame 1"


def test_a_timeout_kills_the_command(tmp_path: Path) -> None:
    pids: list[int] = []
    outcome = execution.run(
        SLEEPER,
        env={},
        log_path=tmp_path / "t.log",
        timeout=1,
        heartbeat=lambda: True,
        period=0.2,
        started=pids.append,
    )
    assert outcome.timed_out and not outcome.succeeded and outcome.describe() == "timed out"
    assert not Path(f"/proc/{pids[0]}").exists()


def test_a_heartbeat_answering_stop_stops_the_command(tmp_path: Path) -> None:
    beats: list[float] = []

    def heartbeat() -> bool:
        beats.append(time.monotonic())
        return len(beats) < 2  # the second beat: the job was cancelled

    outcome = execution.run(
        SLEEPER, env={}, log_path=tmp_path / "s.log", timeout=60, heartbeat=heartbeat, period=0.2
    )
    assert outcome.stopped and outcome.describe() == "stopped" and len(beats) == 2
    assert "started" in execution.last_lines(tmp_path / "s.log")


def test_a_missing_program_is_a_failed_attempt(tmp_path: Path) -> None:
    outcome = execution.run(
        ["/nonexistent/renderer"],
        env={},
        log_path=tmp_path / "m.log",
        timeout=5,
        heartbeat=lambda: True,
        period=1,
    )
    assert outcome.exit_code == 127 and not outcome.succeeded
    assert "cannot start the command" in execution.last_lines(tmp_path / "m.log")[-1]


def test_gpu_ids_are_taken_all_or_none(tmp_path: Path) -> None:
    """A chunk waiting for both GPUs of a host, one of which is busy, holds neither meanwhile:
    a 1-GPU chunk still gets the free one; the waiter gets both once they are released."""
    import threading

    got: list[list[int]] = []
    with execution.gpu_ids(tmp_path, "h", 1, 2) as busy:
        waiter = threading.Thread(target=lambda: got.append(_hold(tmp_path, count=2, total=2)), daemon=True)
        waiter.start()
        time.sleep(0.3)
        with execution.gpu_ids(tmp_path, "h", 1, 2, wait=0.5) as other:
            assert set(other) | set(busy) == {0, 1}
        assert not got
    waiter.join(5)
    assert got == [[0, 1]]


def _hold(root: Path, *, count: int, total: int) -> list[int]:
    with execution.gpu_ids(root, "h", count, total, wait=None, wanted=lambda: True, ask_every=0.1) as ids:
        time.sleep(0.5)  # held a moment, so the main thread's next take waits for it
        return ids


def test_a_waiter_that_is_no_longer_wanted_stops_waiting(tmp_path: Path) -> None:
    asked = []

    def wanted() -> bool:
        asked.append(True)
        return len(asked) < 3

    with (
        execution.gpu_ids(tmp_path, "h", 1, 1),
        pytest.raises(execution.ChunkNotWanted),
        execution.gpu_ids(tmp_path, "h", 1, 1, wait=None, wanted=wanted, ask_every=0.05),
    ):
        pass
    assert len(asked) == 3
