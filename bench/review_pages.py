"""Web interface benchmark: the shot page and the review page of a shot with 50 versions.

    .venv/bin/python -m bench.review_pages [--pg postgresql://postgres@127.0.0.1:5432] [--requests 200]

Builds a throwaway PostgreSQL database with one shot holding 50 versions (each with a
`review-proxy` and a `review-thumbnails` representation) and 20 notes on the newest, serves
the app with uvicorn in this process, logs in (a session cookie), and times GET /ui/shots/{id}
and GET /ui/versions/{id} over one keep-alive connection: p50/p95/p99 of the round trip on
loopback, which is the server's time plus well under a millisecond. Target: p50 <= 30 ms each.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import threading
import time
import uuid

import psycopg

VERSIONS, NOTES = 50, 20
TARGET_MS = 30


def build(url: str) -> tuple[int, int, str]:
    from bifrost_core.db import migrate
    from bifrost_core.db.database import Database
    from bifrost_core.db.uow import UnitOfWork
    from bifrost_core.ingest.repository import record_blobs
    from bifrost_core.projects import service as projects
    from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
    from bifrost_core.reviews import service as reviews
    from bifrost_core.reviews.schemas import NoteCreate
    from bifrost_core.scope import SYSTEM
    from bifrost_core.tasks import service as tasks
    from bifrost_core.tasks.schemas import TaskCreate
    from bifrost_core.users import service as users
    from bifrost_core.users.schemas import MembershipCreate, TokenCreate, UserCreate
    from bifrost_core.versions import service as versions
    from bifrost_core.versions.schemas import FileIn, RepresentationIn, VersionCreate

    database = Database(url)
    migrate.upgrade(database)
    with UnitOfWork(database) as uow:
        s = uow.session
        project = projects.create_project(s, actor=SYSTEM, data=ProjectCreate(code="BENCH", name="bench"))
        sequence = projects.create_sequence(
            s, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code="sq010")
        )
        shot = projects.create_shot(s, actor=SYSTEM, sequence_id=sequence.id, data=ShotCreate(code="sh010"))
        task = tasks.create_task(s, actor=SYSTEM, data=TaskCreate(task_type="comp", shot_id=shot.id))
        movie, still = "aa" * 32, "bb" * 32
        record_blobs(s, [(movie, 1, "/nonexistent/m"), (still, 1, "/nonexistent/s")], "hot")
        version = None
        for _ in range(VERSIONS):
            version = versions.create_version(
                s,
                actor=SYSTEM,
                data=VersionCreate(
                    task_id=task.id,
                    representations=[
                        RepresentationIn(
                            name="review-proxy",
                            kind="proxy",
                            frame_in=1001,
                            frame_out=1100,
                            meta={"fps": "24"},
                            files=[FileIn(name="proxy.mp4", blob_hash=movie)],
                        ),
                        RepresentationIn(
                            name="review-thumbnails",
                            kind="thumbnail",
                            files=[FileIn(name="thumbnail.1050.jpg", blob_hash=still, frame=1050)],
                        ),
                    ],
                ),
            )
        for n in range(NOTES):
            reviews.create_note(
                s,
                actor=SYSTEM,
                target="version",
                target_id=version.id,
                data=NoteCreate(body=f"note {n}", frame_in=1001 + n),
            )
        user = users.create_user(s, actor=SYSTEM, data=UserCreate(username="sup"))
        users.set_membership(
            s, actor=SYSTEM, project_id=project.id, data=MembershipCreate(user_id=user.id, role="supervisor")
        )
        token = users.create_token(
            s, actor=SYSTEM, user_id=user.id, data=TokenCreate(name="web session")
        ).token
        uow.commit()
    database.dispose()
    return shot.id, version.id, token


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    name = f"bench_ui_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{args.pg.split('://', 1)[1]}/{name}"
    try:
        run(url, args.requests)
    finally:
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(url: str, requests: int) -> None:
    import uvicorn

    from api.app import create_app
    from bifrost_core.cache.backends import LocalCache
    from bifrost_core.config import load_settings
    from tests.support.services import free_port

    shot_id, version_id, secret = build(url)
    app = create_app(load_settings(database_url=url, api_rate_limit=0), cache=LocalCache())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    connection = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Cookie": f"bifrost_session={secret}"}
    print(f"{VERSIONS} versions on the shot, {NOTES} notes on the version; {requests} requests each")
    for label, path in (("shot page", f"/ui/shots/{shot_id}"), ("review page", f"/ui/versions/{version_id}")):
        times = []
        for index in range(requests + 20):
            started = time.perf_counter()
            connection.request("GET", path, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status != 200:
                raise SystemExit(f"{path}: {answer.status} {body[:200]!r}")
            if index >= 20:  # the first ones warm the caches up
                times.append(elapsed)
        cuts = statistics.quantiles(times, n=100)
        print(
            f"{label:12s} p50 {statistics.median(times):6.1f} ms  p95 {cuts[94]:6.1f} ms"
            f"  p99 {cuts[98]:6.1f} ms  (target p50 <= {TARGET_MS} ms)  {len(body) / 1024:.0f} KiB"
        )
    server.should_exit = True


if __name__ == "__main__":
    main()
