"""Render jobs: frame sets, chunk planning, submit (every bad input refused with nothing
recorded), list, show with progress, cancel and retry-failed, permissions."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, update

from bifrost_core.errors import Conflict, InvalidInput, InvalidTransition, NotFound, PermissionDenied
from bifrost_core.events.models import Event
from bifrost_core.render import service as render
from bifrost_core.render.frames import MAX_CHUNKS, MAX_FRAMES, Chunk, cut_chunks, parse_frames
from bifrost_core.render.models import RenderChunk, RenderJob
from bifrost_core.render.planning import command_for
from bifrost_core.render.schemas import RenderJobCreate
from bifrost_core.scope import SYSTEM

HOSTS = {"gpu-a": 1, "gpu-b": 2}
COMMAND = ["render", "-s", "{first}", "-e", "{last}", "-j", "{step}", "-o", "{output}"]


# --------------------------------------------------------------------------- frame sets


@pytest.mark.parametrize(
    ("spec", "normalised", "count"),
    [
        ("1001-1100", "1001-1100", 100),
        ("1-100x2", "1-99x2", 50),
        ("1,5,10-20", "1,5,10-20", 13),
        (" 10-1 ", "1-10", 10),  # reversed and padded: the same frames
        ("1-10y3", "2-3,5-6,8-9", 6),
        ("1-10:3", "1-10", 10),
        ("-5--3", "-5--3", 3),
        ("7", "7", 1),
        ("1-3,2-4", "1-4", 4),
        ("0001001-0001003", "1001-1003", 3),  # padded as on disk
        ("0" * 9999, "0", 1),
    ],
)
def test_frame_sets_are_parsed_with_fileseq_and_normalised(spec, normalised, count):
    parsed = parse_frames(spec)
    assert parsed.spec == normalised
    assert len(parsed.frames) == count
    assert list(parsed.frames) == sorted(set(parsed.frames))


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "invalid frame set part 'abc'"),
        ("1-10x-2", "the step must be a positive number"),
        ("1-10x0", "the step must be a positive number"),
        ("1.5", "invalid frame set part"),
        ("1,,2", "invalid frame set part ''"),
        ("1-200000", f"more than {MAX_FRAMES:,} frames"),
        ("1-60000,70000-130000", f"more than {MAX_FRAMES:,} frames"),
        # Refused by arithmetic: fileseq would enumerate these frame by frame for minutes.
        ("1-9999999:3", f"more than {MAX_FRAMES:,} frames"),
        ("1-9999999y2", f"more than {MAX_FRAMES:,} frames"),
        ("20000000", "out of range"),
        ("-20000000-1", "out of range"),
        ("1" * 10_001, "longer than"),
        # Thousands of digits: refused by their count, never handed to int() (a 500 before).
        ("1" * 9999, "out of range"),
        ("1-" + "0" * 5000 + "9" * 4000, "out of range"),
        ("1-10x" + "7" * 5000, "out of range"),
    ],
)
def test_bad_frame_sets_are_refused_with_a_reason(spec, says):
    with pytest.raises(InvalidInput, match="frame") as caught:
        parse_frames(spec)
    assert says in str(caught.value)


def _frames_of(chunks: list[Chunk]) -> list[int]:
    return [frame for c in chunks for frame in range(c.first, c.last + 1, c.step)]


@pytest.mark.parametrize("spec", ["1001-1100", "1-100x2", "1,5,10-20", "1-10y3", "1,2,4,8,16,32", "-3-3"])
@pytest.mark.parametrize("size", [1, 3, 10, 1000])
def test_chunks_are_progressions_of_at_most_chunk_size_covering_every_frame_once(spec, size):
    frames = parse_frames(spec).frames
    chunks = cut_chunks(frames, size)
    assert _frames_of(chunks) == list(frames)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert 1 <= c.frame_count <= size
        assert c.step >= 1
        assert parse_frames(c.frames).frames == tuple(range(c.first, c.last + 1, c.step))


def test_chunk_cutting_examples():
    assert [c.frames for c in cut_chunks(parse_frames("1001-1025").frames, 10)] == [
        "1001-1010",
        "1011-1020",
        "1021-1025",
    ]
    assert [c.frames for c in cut_chunks(parse_frames("1-100x2").frames, 25)] == ["1-49x2", "51-99x2"]
    assert [c.frames for c in cut_chunks(parse_frames("1,5,10-12").frames, 10)] == ["1-5x4", "10-12"]
    with pytest.raises(InvalidInput):
        cut_chunks((1, 2), 0)


def test_a_job_has_at_most_max_chunks():
    assert len(cut_chunks(parse_frames("1-10000").frames, 1)) == 10_000
    with pytest.raises(InvalidInput, match="more than 20,000 chunks: give a larger chunk size"):
        cut_chunks(parse_frames("1-30000").frames, 1)
    # Irregular frames cut into more chunks than frames / chunk size.
    with pytest.raises(InvalidInput, match="more than 20,000 chunks"):
        cut_chunks(parse_frames("1-99999y3").frames, 10)
    assert MAX_CHUNKS == 20_000


# --------------------------------------------------------------------------- the schema


def _create(**fields) -> RenderJobCreate:
    return RenderJobCreate.model_validate({"task_id": 1, "command": COMMAND, "frames": "1-10", **fields})


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"command": "blender -b x.blend -a"}, "must be a list of arguments"),
        ({"command": []}, "the command is empty"),
        ({"command": ["", "-b"]}, "program (its first argument) is empty"),
        ({"command": ["render", "{frame}"]}, "unknown placeholder {frame}"),
        ({"command": ["render", "{first.real}"]}, "unknown placeholder {first.real}"),
        ({"command": ["render", "{first!r}"]}, "no conversion"),
        ({"command": ["render", "{first:999999999}"]}, "is not allowed"),
        ({"command": ["render", "{first:{last}}"]}, "is not allowed"),
        ({"command": ["render", "{first"]}, "literal braces"),
        ({"command": ["render", "{scene:d}"], "scene": "/x"}, "argument 2"),
        ({"command": ["render", "{scene}"]}, "uses {scene} but no scene is given"),
        ({"command": ["render", 3]}, "valid string"),
        ({"chunk_size": 0}, "greater than or equal to 1"),
        ({"chunk_size": 10_001}, "less than or equal to 10000"),
        ({"gpus_per_chunk": 0}, "greater than or equal to 1"),
        ({"timeout_seconds": 0}, "greater than or equal to 1"),
        ({"timeout_seconds": 7 * 86400 + 1}, "less than or equal to"),
        ({"retries": 11}, "less than or equal to 10"),
        ({"priority": 101}, "less than or equal to 100"),
        ({"environment": {"1X": "y"}}, "not a variable name"),
        ({"environment": {"A-B": "y"}}, "not a variable name"),
        ({"environment": {"CUDA_VISIBLE_DEVICES": "0"}}, "set by the farm"),
        ({"environment": {"X": "a\x00b"}}, "control character"),
        ({"environment": {"X": "\ud800"}}, "unicode"),
        ({"environment": {f"V{i}": "x" for i in range(101)}}, "at most 100 items"),
        ({"environment": {"X": "x" * 40_000}}, "at most 32768 characters"),
        ({"environment": {f"V{i}": "x" * 400 for i in range(100)}}, "the limit is 32 KiB"),
        ({"environment": {"X": 1}}, "valid string"),
        ({"name": "has space"}, "should match pattern"),
    ],
)
def test_the_schema_refuses_bad_fields(fields, says):
    with pytest.raises(ValidationError) as caught:
        _create(**fields)
    assert says in str(caught.value)


def test_a_valid_command_keeps_its_arguments_apart():
    command = ["render", "--out", "{output_dir}/a b", "{first:04d}", "{chunk:>3}", "{{literal}}"]
    data = _create(command=command, environment={"OCIO": "/c"})
    assert data.command == command


# --------------------------------------------------------------------------- submit


def _submit(session, task, *, actor=SYSTEM, hosts=HOSTS, root=Path("/render"), **fields):
    return render.submit(
        session,
        actor=actor,
        project_id=task.project_id,
        data=_create(task_id=task.id, **fields),
        gpu_hosts=hosts,
        render_root=root,
    )


def _counts(session) -> tuple[int, int, int]:
    return (
        session.scalar(select(func.count()).select_from(RenderJob)),
        session.scalar(select(func.count()).select_from(RenderChunk)),
        session.scalar(select(func.count()).select_from(Event).where(Event.entity_type == "render_job")),
    )


def test_submit_records_the_job_and_all_its_chunks(session, build, delivered, tmp_path):
    project, shot, task = build.shot_task()
    scene = tmp_path / "shot.blend"
    scene.write_bytes(b"scene")
    job = _submit(
        session,
        task,
        frames="1001-1025",
        chunk_size=10,
        priority=70,
        gpus_per_chunk=2,
        command=["blender", "-b", "{scene}", "-o", "{output}", "-s", "{first}", "-e", "{last}", "-a"],
        scene=str(scene),
        environment={"OCIO": "/cfg/aces.ocio"},
        root=tmp_path / "out",
    )
    session.commit()
    assert (job.state, job.frames, job.frame_count, job.priority, job.gpus_per_chunk) == (
        "queued",
        "1001-1025",
        25,
        70,
        2,
    )
    assert (job.project_id, job.shot_id, job.asset_id, job.task_id) == (project.id, shot.id, None, task.id)
    assert job.name == "sh010_comp"
    assert job.output_dir == str(tmp_path / "out" / "P1" / f"job-{job.id}")
    chunks = session.scalars(select(RenderChunk).order_by(RenderChunk.index)).all()
    assert [(c.index, c.frames, c.first, c.last, c.step, c.frame_count) for c in chunks] == [
        (0, "1001-1010", 1001, 1010, 1, 10),
        (1, "1011-1020", 1011, 1020, 1, 10),
        (2, "1021-1025", 1021, 1025, 1, 5),
    ]
    assert {(c.state, c.attempts) for c in chunks} == {("pending", 0)}
    assert command_for(job, chunks[2]) == [
        "blender",
        "-b",
        str(scene),
        "-o",
        f"{job.output_dir}/sh010_comp.####",
        "-s",
        "1021",
        "-e",
        "1025",
        "-a",
    ]
    assert [
        (e.kind, e.entity_id, e.payload["chunks"]) for e in delivered if e.entity_type == "render_job"
    ] == [("render_job.created", job.id, 3)]


def test_asset_tasks_render_too(session, build):
    project = build.project()
    task = build.task(asset=build.asset(project), task_type="lookdev")
    job = _submit(session, task, name="turntable")
    assert (job.asset_id, job.shot_id, job.name) == (task.asset_id, None, "turntable")


@pytest.mark.parametrize(
    ("fields", "hosts", "says"),
    [
        ({"frames": "1-10x-1"}, HOSTS, "the step must be a positive number"),
        ({"frames": "garbage"}, HOSTS, "invalid frame set part"),
        ({"pool": "bifrost-cpu"}, HOSTS, "unknown pool 'bifrost-cpu'"),
        ({"scene": "/no/such/scene.blend"}, HOSTS, "does not exist"),
        ({"scene": "relative.blend"}, HOSTS, "must be an absolute path"),
        ({"scene": "/" + "x" * 4000}, HOSTS, "cannot be read"),
        ({"gpus_per_chunk": 3}, HOSTS, "the most is 2, on gpu-b"),
        ({}, {}, "no GPU host is registered (start `bifrost worker --pool bifrost-gpu --gpus N`)"),
    ],
)
def test_bad_submits_are_refused_and_record_nothing(session, build, fields, hosts, says):
    _, _, task = build.shot_task()
    before = _counts(session)
    with pytest.raises(InvalidInput) as caught:
        _submit(session, task, hosts=hosts, **fields)
    assert says in str(caught.value)
    assert _counts(session) == before


def test_the_task_must_be_the_projects_and_visible(session, build):
    _, _, task = build.shot_task()
    other = build.project("P2")
    with pytest.raises(NotFound):
        render.submit(
            session,
            actor=SYSTEM,
            project_id=other.id,
            data=_create(task_id=task.id),
            gpu_hosts=HOSTS,
            render_root=Path("/r"),
        )
    with pytest.raises(NotFound):
        _submit(session, task, actor=build.actor(build.user("stranger")))


def test_a_closed_project_takes_no_renders(session, build):
    project, _, task = build.shot_task()
    project.status = "closed"
    with pytest.raises(Conflict, match="closed"):
        _submit(session, task)


# --------------------------------------------------------------------------- roles


def test_who_may_submit_read_cancel_and_retry(session, build):
    project, _, task = build.shot_task()
    people = {}
    for name, role in [
        ("coordinator", "coordinator"),
        ("supervisor", "supervisor"),
        ("artist", "artist"),
        ("artist2", "artist"),
        ("client", "client"),
    ]:
        user = build.user(name)
        build.member(project, user, role)
        people[name] = build.actor(user)

    with pytest.raises(PermissionDenied):
        _submit(session, task, actor=people["client"])
    with pytest.raises(PermissionDenied):
        render.list_jobs(session, actor=people["client"], project_id=project.id)

    own = _submit(session, task, actor=people["artist"])
    assert own.created_by == people["artist"].user_id
    # Another artist may read it but not stop it; a supervisor may.
    assert render.get_job(session, actor=people["artist2"], job_id=own.id) is own
    with pytest.raises(PermissionDenied, match="only their own"):
        render.cancel(session, actor=people["artist2"], job_id=own.id)
    assert render.cancel(session, actor=people["artist"], job_id=own.id).state == "cancelled"
    other = _submit(session, task, actor=people["artist"])
    assert render.cancel(session, actor=people["supervisor"], job_id=other.id).state == "cancelled"


# --------------------------------------------------------------------------- list, show


def test_list_filters_by_state_and_pages(session, build):
    project, _, task = build.shot_task()
    jobs = [_submit(session, task) for _ in range(5)]
    render.cancel(session, actor=SYSTEM, job_id=jobs[1].id)
    listed = render.list_jobs(session, actor=SYSTEM, project_id=project.id, limit=2)
    assert [j.id for j in listed] == [jobs[0].id, jobs[1].id]
    rest = render.list_jobs(session, actor=SYSTEM, project_id=project.id, after=listed[-1].id)
    assert [j.id for j in rest] == [j.id for j in jobs[2:]]
    cancelled = render.list_jobs(session, actor=SYSTEM, project_id=project.id, state="cancelled")
    assert [j.id for j in cancelled] == [jobs[1].id]
    with pytest.raises(InvalidInput, match="unknown state"):
        render.list_jobs(session, actor=SYSTEM, project_id=project.id, state="sleeping")
    with pytest.raises(NotFound):
        render.get_job(session, actor=SYSTEM, job_id=jobs[-1].id + 100)


def _set_chunks(session, job, **states: str) -> None:
    """Chunk index -> state, as the farm would have moved them."""
    for index, state in states.items():
        session.execute(
            update(RenderChunk)
            .where(RenderChunk.job_id == job.id, RenderChunk.index == int(index.removeprefix("c")))
            .values(state=state, attempts=1)
        )
    session.expire_all()


def test_show_gives_every_chunk_and_the_progress(session, build):
    _, _, task = build.shot_task()
    job = _submit(session, task, frames="1-25", chunk_size=10)
    _set_chunks(session, job, c0="completed", c1="running")
    detail = render.job_detail(session, actor=SYSTEM, job_id=job.id)
    assert detail.progress.frames_total == 25
    assert detail.progress.frames_done == 10
    assert detail.progress.chunks_total == 3
    assert detail.progress.chunks == {
        "pending": 1,
        "dispatched": 0,
        "running": 1,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert [(c.index, c.state) for c in detail.chunks] == [(0, "completed"), (1, "running"), (2, "pending")]


# --------------------------------------------------------------------------- cancel, retry


def test_cancel_stops_what_has_not_started_and_leaves_running_chunks_to_the_farm(session, build, delivered):
    _, _, task = build.shot_task()
    job = _submit(session, task, frames="1-50", chunk_size=10)
    job.state = "running"
    _set_chunks(session, job, c0="completed", c1="running", c2="dispatched")
    session.commit()
    cancelled = render.cancel(session, actor=SYSTEM, job_id=job.id)
    session.commit()
    assert (cancelled.state, cancelled.finished_at is not None) == ("cancelled", True)
    states = session.scalars(select(RenderChunk.state).order_by(RenderChunk.index)).all()
    assert states == ["completed", "running", "cancelled", "cancelled", "cancelled"]
    assert delivered[-1].kind == "render_job.updated"
    assert delivered[-1].payload == {"state": ["running", "cancelled"], "cancelled_chunks": 3}
    # Again: nothing changes, nothing is recorded.
    events = len(delivered)
    assert render.cancel(session, actor=SYSTEM, job_id=job.id).state == "cancelled"
    session.commit()
    assert len(delivered) == events


@pytest.mark.parametrize("state", ["completed", "failed"])
def test_a_finished_job_cannot_be_cancelled(session, build, state):
    _, _, task = build.shot_task()
    job = _submit(session, task)
    job.state = state
    with pytest.raises(InvalidTransition, match=f"has {state}"):
        render.cancel(session, actor=SYSTEM, job_id=job.id)


def test_retry_failed_puts_failed_chunks_back_with_fresh_attempts(session, build, delivered):
    _, _, task = build.shot_task()
    job = _submit(session, task, frames="1-30", chunk_size=10, retries=1)
    _set_chunks(session, job, c0="completed", c1="failed", c2="failed")
    session.execute(
        update(RenderChunk)
        .where(RenderChunk.state == "failed")
        .values(attempts=2, exit_code=3, error="boom", host="gpu-a", gpu_ids="0", log_path="/l/c.log")
    )
    job = session.get(RenderJob, job.id)
    job.state, job.report, job.prefect_run_id = "failed", "chunks 1, 2 failed", "run-1"
    session.commit()
    retried = render.retry_failed(session, actor=SYSTEM, job_id=job.id)
    session.commit()
    assert (retried.state, retried.report, retried.prefect_run_id, retried.finished_at) == (
        "queued",
        None,
        None,
        None,
    )
    chunks = session.scalars(select(RenderChunk).order_by(RenderChunk.index)).all()
    assert [(c.state, c.attempts, c.exit_code, c.error, c.host) for c in chunks] == [
        ("completed", 1, None, None, None),
        ("pending", 0, None, None, None),
        ("pending", 0, None, None, None),
    ]
    assert chunks[1].log_path == "/l/c.log"  # the last failure's log stays readable
    assert delivered[-1].payload == {"state": ["failed", "queued"], "retried_chunks": 2}
    with pytest.raises(InvalidTransition, match="no failed chunks"):
        render.retry_failed(session, actor=SYSTEM, job_id=job.id)


def test_retry_on_a_running_job_keeps_it_running(session, build):
    _, _, task = build.shot_task()
    job = _submit(session, task, frames="1-20", chunk_size=10)
    job.state = "running"
    _set_chunks(session, job, c0="failed", c1="running")
    assert render.retry_failed(session, actor=SYSTEM, job_id=job.id).state == "running"


@pytest.mark.parametrize("state", ["completed", "cancelled"])
def test_finished_jobs_are_not_retried(session, build, state):
    _, _, task = build.shot_task()
    job = _submit(session, task)
    job.state = state
    with pytest.raises(InvalidTransition):
        render.retry_failed(session, actor=SYSTEM, job_id=job.id)
