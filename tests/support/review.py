"""A version to review: a real H.264 proxy and thumbnail made with ffmpeg, stored through the
blob store as the representations the review-media flow makes (`review-proxy`,
`review-thumbnails`), its task in review, passwords, and two playlists (one shared with
clients)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.ingest.repository import record_blobs
from bifrost_core.media.service import PROXY, THUMBNAILS
from bifrost_core.reviews import service as reviews
from bifrost_core.reviews.schemas import PlaylistCreate
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.blobstore.store import BlobStore
from bifrost_core.users import passwords
from bifrost_core.versions import service as versions
from bifrost_core.versions.schemas import FileIn, RepresentationIn, VersionCreate
from tests.support.world import World

PASSWORD = "correct horse battery"
FPS = 24
FIRST, LAST = 1001, 1048  # two seconds at 24 fps


@dataclass
class Review:
    version_id: int
    second_version_id: int
    task_id: int
    shot_id: int
    sequence_id: int
    project_id: int
    internal_playlist: int
    client_playlist: int


def make_media(folder: Path) -> tuple[Path, Path]:
    """A 2-second 24 fps H.264 MP4 (a frame counter drawn by ffmpeg's testsrc) and a JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    movie, still = folder / "proxy.mp4", folder / "thumb.jpg"
    run = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size=320x180:rate={FPS}:duration=2"]
    subprocess.run(
        [*run, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "1", "-movflags", "+faststart", str(movie)],
        check=True,
    )
    subprocess.run([*run, "-frames:v", "1", str(still)], check=True)
    return movie, still


def build_review(database: Database, world: World, root: Path) -> Review:
    movie, still = make_media(root / "media")
    store = BlobStore(root / "hot", name="hot")
    stored = {path: store.put_file(path) for path in (movie, still)}
    ids = world.a
    with UnitOfWork(database) as uow:
        session = uow.session
        record_blobs(session, [(r.digest, r.size, store.url_for(r.digest)) for r in stored.values()], "hot")
        data = VersionCreate(
            task_id=ids.task_id,
            representations=[
                # As bifrost_core.media.service records them: fps as a fraction's text.
                RepresentationIn(
                    name=PROXY,
                    kind="proxy",
                    frame_in=FIRST,
                    frame_out=LAST,
                    meta={"fps": str(FPS)},
                    files=[FileIn(name="proxy.mp4", blob_hash=stored[movie].digest)],
                ),
                RepresentationIn(
                    name=THUMBNAILS,
                    kind="thumbnail",
                    frame_in=FIRST,
                    frame_out=FIRST,
                    files=[
                        FileIn(name=f"thumbnail.{FIRST}.jpg", blob_hash=stored[still].digest, frame=FIRST)
                    ],
                ),
            ],
        )
        version = versions.create_version(session, actor=SYSTEM, data=data)
        # A second take of the same media (the same blobs): the playlist plays one after the other.
        second = versions.create_version(session, actor=SYSTEM, data=data)
        # The new versions have moved the task to review (statuses follow new versions).
        for username in ("supervisor", "client", "artist"):
            passwords.set_password(session, actor=SYSTEM, username=username, password=PASSWORD)
        internal = reviews.create_playlist(
            session,
            actor=SYSTEM,
            project_id=ids.project_id,
            data=PlaylistCreate(name="internal daily", version_ids=[version.id, ids.version_id, second.id]),
        )
        shared = reviews.create_playlist(
            session,
            actor=SYSTEM,
            project_id=ids.project_id,
            data=PlaylistCreate(
                name="client review", kind="client", shared_with_clients=True, version_ids=[version.id]
            ),
        )
        review = Review(
            version_id=version.id,
            second_version_id=second.id,
            task_id=ids.task_id,
            shot_id=ids.shot_id,
            sequence_id=ids.sequence_id,
            project_id=ids.project_id,
            internal_playlist=internal.id,
            client_playlist=shared.id,
        )
        uow.commit()
    return review
