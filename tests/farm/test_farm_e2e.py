"""Render jobs on a real farm (tests/farm/conftest.py): a Prefect server, a CPU worker and two
GPU workers (h1: 1 GPU, h2: 2 GPUs) as processes, the fake renderer as the command.

Everything is checked from what was recorded: the chunks' rows (host, GPU ids, start, end,
attempts) and the renderer's own start/end lines (pid, CUDA_VISIBLE_DEVICES, times).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from sqlalchemy import select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.versions.models import Version
from bifrost_core.versions.schemas import VersionRead
from tests.support.farm import HOSTS, Farm, alive, descendants, fake_command, records, slots_in_use


def overlapping(intervals: list[tuple[float, float, object]]) -> int:
    """The most intervals open at one instant."""
    events = sorted([(start, 1) for start, _, _ in intervals] + [(end, -1) for _, end, _ in intervals])
    most = current = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most


def test_a_job_runs_on_both_gpu_hosts_within_their_slots(farm: Farm, tmp_path: Path) -> None:
    record = tmp_path / "runs.jsonl"
    job_id = farm.submit_through_api(
        command=fake_command(record, "--sleep", "0.4"), frames="1001-1012", chunk_size=2, retries=0
    )
    job = farm.wait_job(job_id, {"completed", "failed"})
    assert job.state == "completed", job.report
    chunks = farm.chunks(job_id)
    assert [c.state for c in chunks] == ["completed"] * 6
    assert {c.host for c in chunks} <= set(HOSTS)
    for host, slots in HOSTS.items():
        # From the recorded start and end times: never more chunks at once than slots.
        mine = [(c.started_at, c.finished_at, c.gpu_ids) for c in chunks if c.host == host]
        assert overlapping(mine) <= slots, (host, mine)
        ran = [r for r in records(record) if r["host"] == host and r["event"] == "end"]
        assert overlapping([(r["start"], r["end"], r["gpus"]) for r in ran]) <= slots
        # Overlapping chunks of a host hold distinct GPU ids, each within the host's.
        for one in ran:
            assert int(one["gpus"]) < slots
            for other in ran:
                if one is not other and one["start"] < other["end"] and other["start"] < one["end"]:
                    assert one["gpus"] != other["gpus"], (one, other)
    assert {r["host"] for r in records(record)} == set(HOSTS), "both hosts took chunks"
    # The frames are a new version of the task, which knows its job.
    with UnitOfWork(farm.database) as uow:
        version = uow.session.scalar(select(Version).where(Version.id == job.version_id))
        assert version is not None and version.render_job_id == job_id and version.task_id == farm.task_id
        assert VersionRead.model_validate(version).render_job_id == job_id  # what the API shows
        (representation,) = version.representations
        assert (representation.frame_in, representation.frame_out) == (1001, 1012)
        assert len(representation.files) == 12


def test_a_chunk_that_fails_once_is_retried_and_completes(farm: Farm, tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"
    job_id = farm.submit(
        fake_command(tmp_path / "runs.jsonl", "--sleep", "0.1", "--fail", f"once:{marker}"),
        frames="1-2",
        chunk_size=2,
        retries=1,
    )
    job = farm.wait_job(job_id, {"completed", "failed"})
    assert job.state == "completed", job.report
    (chunk,) = farm.chunks(job_id)
    assert (chunk.state, chunk.attempts, chunk.exit_code) == ("completed", 2, 0)
    assert marker.exists()


def test_a_chunk_that_always_fails_fails_the_job_with_a_report(farm: Farm, tmp_path: Path) -> None:
    job_id = farm.submit(
        fake_command(tmp_path / "runs.jsonl", "--fail", "always"), frames="1-3", chunk_size=2, retries=1
    )
    job = farm.wait_job(job_id, {"completed", "failed"})
    assert job.state == "failed"
    chunks = farm.chunks(job_id)
    assert all(c.state == "failed" and c.attempts == 2 and c.exit_code == 3 for c in chunks)
    for chunk in chunks:
        assert f"## chunk {chunk.index} (frames " in job.report
        assert chunk.log_path.endswith(f"chunk-{chunk.index}.2.log")
    assert "exit code 3" in job.report
    assert "fake renderer: failing as asked" in job.report
    assert job.version_id is None


def test_frames_that_are_already_a_version_fail_the_job_with_why(farm: Farm, tmp_path: Path) -> None:
    # The fake renderer draws only the frame number: a second job of the same frames renders
    # the same bytes, which the publish machinery does not register twice.
    command = fake_command(tmp_path / "runs.jsonl", "--sleep", "0.1")
    ended = {"completed", "failed"}
    first = farm.wait_job(farm.submit(command, frames="7-8", chunk_size=2, retries=0), ended)
    assert first.state == "completed", first.report
    again = farm.wait_job(farm.submit(command, frames="7-8", chunk_size=2, retries=0), ended)
    assert again.state == "failed"
    assert again.version_id is None
    assert "its frames made no new version: the same frames are already a version" in again.report


def test_cancel_stops_running_chunks_and_pending_ones_never_start(farm: Farm, tmp_path: Path) -> None:
    record = tmp_path / "runs.jsonl"
    # Six hanging chunks, three GPU slots: three run, three wait.
    job_id = farm.submit(fake_command(record, "--hang"), frames="1-6", chunk_size=1, timeout=600)
    deadline = time.monotonic() + 90
    while len([r for r in records(record) if r["event"] == "start"]) < 3:
        assert time.monotonic() < deadline, farm.chunks(job_id)
        time.sleep(0.3)
    started = {r["tag"]: r["pid"] for r in records(record)}
    # While their commands run, the chunks hold every slot of their hosts' limits.
    deadline = time.monotonic() + 30
    while (held := {host: slots_in_use(farm.api_url, f"gpu:{host}") for host in HOSTS}) != HOSTS:
        assert time.monotonic() < deadline, held
        time.sleep(0.3)
    farm.cancel(job_id)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in started.values()):
        assert time.monotonic() < deadline, "a cancelled chunk's renderer still runs"
        time.sleep(0.3)
    deadline = time.monotonic() + 30
    while (held := {host: slots_in_use(farm.api_url, f"gpu:{host}") for host in HOSTS}) != dict.fromkeys(
        HOSTS, 0
    ):
        assert time.monotonic() < deadline, f"cancelled chunks kept their slots: {held}"
        time.sleep(0.3)
    time.sleep(3)  # what would start next, had a slot been reused for this job
    assert {r["tag"] for r in records(record)} == set(started)
    chunks = farm.chunks(job_id)
    assert all(c.state == "cancelled" for c in chunks), [(c.index, c.state) for c in chunks]
    assert farm.job(job_id).state == "cancelled"


def test_a_killed_gpu_worker_has_its_chunk_retried_on_the_other(farm: Farm, tmp_path: Path) -> None:
    record = tmp_path / "runs.jsonl"
    job_id = farm.submit(fake_command(record, "--sleep", "1.5"), frames="1-4", chunk_size=4, retries=2)
    farm.wait_chunk(job_id, 0, "running")
    deadline = time.monotonic() + 60
    while not (started := records(record)):  # the renderer itself is running
        assert time.monotonic() < deadline
        time.sleep(0.2)
    victim = started[0]["host"]
    worker = farm.workers[victim]
    tree = [worker.pid, *descendants(worker.pid)]
    farm.killed.add(victim)
    killed_at = time.time()
    for pid in tree:  # the worker, its flow runs and the renderer, all at once
        # (one may be gone already: the warm engine's children die with their parent)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.wait()
    job = farm.wait_job(job_id, {"completed", "failed"}, timeout=150)
    assert job.state == "completed", job.report
    (done,) = farm.chunks(job_id)
    assert done.attempts == 2 and done.host != victim
    runs = records(record)
    first = next(r for r in runs if r["host"] == victim)
    second = next(r for r in runs if r["host"] == done.host and r["event"] == "end")
    # Never two attempts at once: the retry started after the killed one had stopped.
    assert not any(alive(pid) for pid in tree)
    assert first["start"] < killed_at < second["start"]
    assert all(r["event"] == "start" for r in runs if r["host"] == victim)
    farm.start_worker(victim, "--pool", "bifrost-gpu", "--gpus", str(HOSTS[victim]), "--host", victim)
    farm.killed.discard(victim)


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # it ended meanwhile
        return b""


def test_a_chunk_runs_in_a_child_forked_by_its_workers_warm_engine(farm: Farm, tmp_path: Path) -> None:
    record = tmp_path / "runs.jsonl"
    job_id = farm.submit(fake_command(record, "--hang"), frames="1", chunk_size=1, timeout=600)
    deadline = time.monotonic() + 90
    while not (started := records(record)):
        assert time.monotonic() < deadline, farm.chunks(job_id)
        time.sleep(0.2)
    (renderer,) = started
    worker = farm.workers[renderer["host"]].pid
    chunk_run = parent(renderer["pid"])
    engine = parent(chunk_run)
    assert b"cli.warm_engine" in command_line(engine)
    assert parent(engine) == worker
    # The process the worker started for the run is the thin client, not a fresh engine.
    below = [command_line(pid) for pid in descendants(worker)]
    assert any(b"cli.engine_client" in line for line in below)
    assert not any(b"prefect.engine" in line for line in below)
    farm.cancel(job_id)  # its chunk run, in the engine's child, stops the renderer
    deadline = time.monotonic() + 30
    while alive(renderer["pid"]):
        assert time.monotonic() < deadline, "the cancelled chunk's renderer still runs"
        time.sleep(0.2)
    assert farm.wait_job(job_id, {"cancelled"}, timeout=60).state == "cancelled"
    assert farm.wait_chunk(job_id, 0, "cancelled").state == "cancelled"
