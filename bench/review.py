"""Review-media benchmark, in sections (figures printed, never asserted):

    .venv/bin/python -m bench.review [--section proxy|trigger] [--frames 100] [--repeat 3]

proxy: the review media of a --frames 1920x1080 PNG sequence (bifrost_core.media: the proxy
    with its burn-in, the thumbnails and the contact sheet, in one ffmpeg run) against plain
    ffmpeg making the same H.264 (same preset, CRF, GOP and threads, no burn-in, no stills) from
    the same files, alternately, --repeat times each; medians. Target: <= 1.2x plain ffmpeg.

trigger: a local Prefect server, the review-media deployment (with its trigger) and one
    `bifrost worker` on the CPU pool (polling every second), on a SQLite database; then
    --repeat publishes (the publish flow, here) of a new --frames 1920x1080 PNG sequence. For
    each, from the version's commit (versions.created_at) to its review media's commit (the
    `version.review_media` event): target <= 10 s. Most of it is Prefect's: the event, the
    automation, the worker's poll and a new process for the run (imports, pull step).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

SIZE = (1920, 1080)
PROXY_TARGET = 1.2
TRIGGER_TARGET = 10.0


def frames(folder: Path, count: int, salt: int = 0) -> list[Path]:
    """A 1080p PNG sequence with detail to encode: a gradient and shapes that move."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    base = Image.linear_gradient("L").resize(SIZE).convert("RGB")
    paths = []
    for index in range(count):
        image = base.copy()
        draw = ImageDraw.Draw(image)
        for shape in range(12):
            x = (index * (7 + shape) * 9 + shape * 150 + salt * 37) % (SIZE[0] - 200)
            y = (shape * 85 + index * 3) % (SIZE[1] - 200)
            draw.ellipse((x, y, x + 180, y + 180), fill=(40 * shape % 255, 255 - 20 * shape, 90 + salt % 100))
        draw.text((40, 1000), f"bench frame {index} run {salt}", fill=(255, 255, 255))
        path = folder / f"comp.{1001 + index}.png"
        image.save(path, compress_level=1)
        paths.append(path)
    return paths


def proxy_section(count: int, repeat: int) -> None:
    from bifrost_core.media import render

    with tempfile.TemporaryDirectory(prefix="bifrost-bench-review-") as tmp:
        root = Path(tmp)
        paths = frames(root / "src", count)
        source = render.source_of("frames", paths, 1001, Fraction(24))
        plain = [
            render.tool("ffmpeg"), "-nostdin", "-loglevel", "error", "-y",
            "-framerate", "24", "-start_number", "1001", "-i", str(root / "src" / "comp.%04d.png"),
            "-c:v", "libx264", "-preset", render.PRESET, "-crf", str(render.CRF), "-profile:v", "high",
            "-g", "24", "-threads:v", str(render.ENCODER_THREADS), "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(root / "plain.mp4"),
        ]  # fmt: skip
        ours, theirs = [], []
        for attempt in range(repeat):
            started = time.perf_counter()
            subprocess.run(plain, check=True)
            theirs.append(time.perf_counter() - started)
            out = root / f"ours-{attempt}"
            out.mkdir()
            started = time.perf_counter()
            render.make_media(
                source, out, height=1080, thumbnail_height=180, label="BENCH  sq010/sh010  comp v001"
            )
            ours.append(time.perf_counter() - started)
        mine, plain_time = statistics.median(ours), statistics.median(theirs)
        print(f"proxy of {count} frames {SIZE[0]}x{SIZE[1]} PNG (median of {repeat}):")
        print(f"  bifrost review media (proxy + burn-in + 3 thumbnails + contact sheet): {mine:.2f} s")
        print(f"  plain ffmpeg, same H.264 settings:                                      {plain_time:.2f} s")
        ratio = mine / plain_time
        verdict = "met" if ratio <= PROXY_TARGET else "NOT met"
        print(f"  ratio {ratio:.2f}x (target <= {PROXY_TARGET}x: {verdict})")


def trigger_section(count: int, repeat: int) -> None:
    from bifrost_core.db import migrate
    from bifrost_core.db.database import Database
    from bifrost_core.db.uow import UnitOfWork
    from bifrost_core.events.models import Event
    from bifrost_core.projects import service as projects
    from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
    from bifrost_core.scope import SYSTEM
    from bifrost_core.users import service as users
    from bifrost_core.users.schemas import UserCreate
    from bifrost_core.versions.models import Version
    from deployments.local_server import local_prefect_server
    from flows.registry import FLOWS, ROOT, WORK_POOL

    with tempfile.TemporaryDirectory(prefix="bifrost-bench-trigger-") as tmp:
        root = Path(tmp)
        for tier in ("hot", "archive"):
            (root / "tiers" / tier).mkdir(parents=True)
        database = Database(f"sqlite:///{root / 'bifrost.db'}")
        migrate.upgrade(database)
        with UnitOfWork(database) as uow:
            users.create_user(uow.session, actor=SYSTEM, data=UserCreate(username="bench", is_admin=True))
            project = projects.create_project(
                uow.session, actor=SYSTEM, data=ProjectCreate(code="BENCH", name="B")
            )
            sequence = projects.create_sequence(
                uow.session, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code="sq010")
            )
            projects.create_shot(
                uow.session, actor=SYSTEM, sequence_id=sequence.id, data=ShotCreate(code="sh010")
            )
            uow.commit()
        env = {
            "BIFROST_HOME": str(root / "home"),
            "BIFROST_DATABASE_URL": database.url,
            "BIFROST_HOT_ROOT": str(root / "tiers" / "hot"),
            "BIFROST_ARCHIVE_ROOT": str(root / "tiers" / "archive"),
            "BIFROST_USER": "bench",
        }
        os.environ.update(env)
        with local_prefect_server(root / "prefect-server") as api:
            os.environ["PREFECT_API_URL"] = api
            from deployments.flows import ensure_pools, register

            ensure_pools({WORK_POOL})
            register([FLOWS["review-media"]])
            worker_env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
                "PREFECT_API_URL": api,
                "PREFECT_HOME": str(root / "prefect-worker"),
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            }
            log = root / "worker.log"
            worker = subprocess.Popen(
                [str(Path(sys.executable).parent / "bifrost"), "worker", "--pool", WORK_POOL],
                env=worker_env,
                cwd=ROOT,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                while "started" not in log.read_text():
                    if worker.poll() is not None:
                        raise SystemExit(f"the worker stopped: {log.read_text()[-2000:]}")
                    time.sleep(0.5)
                from flows.publish import publish

                delays = []
                for attempt in range(repeat):
                    paths = frames(root / f"publish-{attempt}", count, salt=attempt + 1)
                    summary = publish(
                        actor="bench", project="BENCH", sequence="sq010", shot="sh010", task="comp",
                        files=[str(path) for path in paths],
                    )  # fmt: skip
                    version_id = summary.created[0].version_id
                    deadline = time.monotonic() + 600
                    while True:
                        with UnitOfWork(database) as uow:
                            made = (
                                uow.session.query(Event)
                                .filter(Event.kind == "version.review_media", Event.entity_id == version_id)
                                .one_or_none()
                            )
                            if made is not None:
                                created = uow.session.get(Version, version_id).created_at
                                delays.append((made.created_at - created).total_seconds())
                                break
                        if time.monotonic() > deadline:
                            raise SystemExit(f"no review media after 600 s: {log.read_text()[-2000:]}")
                        time.sleep(0.2)
                    print(f"  version {version_id}: proxy recorded {delays[-1]:.1f} s after the version")
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=60)
        median = statistics.median(delays)
        verdict = "met" if median <= TRIGGER_TARGET else "NOT met"
        print(
            f"version created -> proxy recorded, {count} frames 1080p, one worker: median {median:.1f} s "
            f"of {repeat} (target <= {TRIGGER_TARGET:.0f} s: {verdict})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--section", choices=("proxy", "trigger"), action="append")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    given = parser.parse_args()
    for section in given.section or ["proxy", "trigger"]:
        (proxy_section if section == "proxy" else trigger_section)(given.frames, given.repeat)


if __name__ == "__main__":
    main()
