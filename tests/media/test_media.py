"""Review media made from real media: an EXR sequence (OpenImageIO wheel), a PNG sequence and
a movie, through the blob store into representations; read back with ffprobe and ffmpeg."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageStat
from sqlalchemy import func, select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import InvalidInput, NotFound
from bifrost_core.events.models import Event
from bifrost_core.media import service as media
from bifrost_core.media.probe import MediaError
from bifrost_core.media.render import FONT
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectUpdate
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.models import Blob, BlobLocation
from bifrost_core.versions.models import Representation, RepresentationFile, Version
from tests.support.ingest import counts
from tests.support.media import (
    FIRST,
    exr_frames,
    ffprobe,
    frame_of,
    movie,
    png_frames,
    publish,
)

pytestmark = pytest.mark.usefixtures("ffmpeg_installed")


def review_files(database, version_id: int) -> dict[str, list[tuple[str, int | None, Path]]]:
    """Review representation -> its files (name, frame, path of the blob in the hot tier)."""
    with UnitOfWork(database) as uow:
        rows = uow.session.execute(
            select(Representation.name, RepresentationFile.name, RepresentationFile.frame, BlobLocation.url)
            .join(RepresentationFile, RepresentationFile.representation_id == Representation.id)
            .join(BlobLocation, BlobLocation.blob_id == RepresentationFile.blob_id)
            .where(Representation.version_id == version_id, Representation.name.in_(media.REVIEW_NAMES))
            .order_by(RepresentationFile.id)
        ).all()
    found: dict[str, list] = {}
    for representation, name, frame, url in rows:
        found.setdefault(representation, []).append((name, frame, Path(url)))
    return found


def set_review(database, project_id: int, review: dict) -> None:
    with UnitOfWork(database) as uow:
        projects.update_project(
            uow.session, actor=SYSTEM, project_id=project_id, data=ProjectUpdate(config={"review": review})
        )
        uow.commit()


def test_exr_sequence(database, production, settings, tmp_path) -> None:
    version_id = publish(database, settings, exr_frames(tmp_path / "plate", 12), task="plate")
    result = media.make(database, settings, actor=SYSTEM, version_id=version_id)
    assert result.created and (result.width, result.height, result.frames) == (320, 180, 12)

    files = review_files(database, version_id)
    proxy = ffprobe(files[media.PROXY][0][2])
    assert (proxy["codec_name"], proxy["pix_fmt"], proxy["width"], proxy["height"]) == (
        "h264",
        "yuv420p",
        320,
        180,
    )
    assert int(proxy["nb_read_packets"]) == 12 and proxy["r_frame_rate"] == "24/1"
    assert proxy["duration"] == pytest.approx(0.5, abs=0.05)
    assert "mp4" in proxy["format"]
    thumbnails = files[media.THUMBNAILS]
    assert [frame for _, frame, _ in thumbnails] == [FIRST, FIRST + 5, FIRST + 11]
    # The default display transform: scene-linear 0.18 shows as sRGB 118 (JPEG: within a few).
    first = Image.open(thumbnails[0][2]).convert("RGB")
    assert first.size == (320, 180)
    assert all(abs(channel - 118) <= 4 for channel in first.getpixel((160, 160)))
    sheet = Image.open(files[media.CONTACT_SHEET][0][2])
    assert sheet.format == "JPEG" and sheet.width > 320


def test_png_sequence_at_the_projects_size_with_its_frame_numbers_burnt_in(
    database, production, settings, tmp_path
) -> None:
    set_review(database, production.project_id, {"proxy_height": 720})
    # Black frames: the burn-in is all that differs from frame to frame.
    paths = png_frames(tmp_path / "comp", 12, size=(1920, 1080), colour=(0, 0, 0), moving=False)
    version_id = publish(database, settings, paths)
    media.make(database, settings, actor=SYSTEM, version_id=version_id)

    proxy_path = review_files(database, version_id)[media.PROXY][0][2]
    proxy = ffprobe(proxy_path)
    assert (proxy["width"], proxy["height"], int(proxy["nb_read_packets"])) == (1280, 720, 12)
    assert proxy["duration"] == pytest.approx(0.5, abs=0.05)
    # Frame 1006 (index 5): its bottom-right corner reads 1006, against each candidate drawn
    # in the same font and size.
    shown = Image.open(frame_of(proxy_path, 5, tmp_path / "f.png")).convert("L")
    assert read_frame_number(shown, range(FIRST, FIRST + 12)) == FIRST + 5


def read_frame_number(frame: Image.Image, candidates: range) -> int:
    """The number drawn in the frame's bottom-right corner: the candidate whose rendering in the
    shipped font, cut to its ink and scaled to the ink found there, differs least from it."""
    size = max(12, frame.height // 30)
    corner = frame.crop((frame.width - 6 * size, frame.height - 2 * size, frame.width, frame.height))
    shown = _ink(corner)
    font = ImageFont.truetype(str(FONT), size * 4)
    scores = {}
    for number in candidates:
        reference = Image.new("L", (size * 20, size * 8), 0)
        ImageDraw.Draw(reference).text((size, size), f"{number:04d}", fill=255, font=font)
        drawn = _ink(reference).resize(shown.size, Image.Resampling.BILINEAR)
        scores[number] = ImageStat.Stat(ImageChops.difference(shown, drawn)).sum[0]
    return min(scores, key=scores.__getitem__)


def _ink(image: Image.Image) -> Image.Image:
    """The image cut to its bright pixels (the text, not the translucent box behind it)."""
    box = image.point(lambda value: 255 if value > 100 else 0).getbbox()
    assert box is not None, "no text found"
    return image.crop(box)


def test_movie_and_a_rerun_makes_nothing_new(database, production, settings, tmp_path) -> None:
    version_id = publish(database, settings, [movie(tmp_path / "anim" / "anim.mp4", seconds=2, rate=25)])
    first = media.make(database, settings, actor=SYSTEM, version_id=version_id)
    proxy = ffprobe(review_files(database, version_id)[media.PROXY][0][2])
    assert (proxy["width"], proxy["height"], int(proxy["nb_read_packets"])) == (640, 360, 50)
    assert proxy["r_frame_rate"] == "25/1" and proxy["duration"] == pytest.approx(2.0, abs=0.05)

    before = counts(database)
    again = media.make(database, settings, actor=SYSTEM, version_id=version_id)
    assert not again.created and counts(database) == before
    # Made again from scratch: the same bytes, so the same blobs; the representations are
    # replaced by equal ones.
    forced = media.make(database, settings, actor=SYSTEM, version_id=version_id, force=True)
    assert forced.created and forced.proxy == first.proxy
    after = counts(database)
    assert after["blobs"] == before["blobs"] and after["representations"] == before["representations"]


def unreviewed(database, version_id: int) -> tuple[str | None, int, int]:
    """The version's media_error, its review representations and its review-media events."""
    with UnitOfWork(database) as uow:
        version = uow.session.get(Version, version_id)
        reps = sum(rep.name in media.REVIEW_NAMES for rep in version.representations)
        events = uow.session.scalar(
            select(func.count()).select_from(Event).where(Event.kind == "version.review_media")
        )
        return version.media_error, reps, events


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not media", "comp.1001.png: not media ffprobe or OpenImageIO can read"),
        ("truncated exr", "cannot read"),
        ("no media representation", "has no frames or movie to review"),
        ("mixed sizes", "plate.1002.exr: 32x18, not 320x180 as frame one"),
    ],
)
def test_bad_media_is_recorded_on_the_version_and_nothing_is_stored(
    database, production, settings, tmp_path, case, expected
) -> None:
    folder = tmp_path / "bad"
    if case == "not media":
        files = [folder / f"comp.{frame}.png" for frame in (1001, 1002)]
        folder.mkdir()
        for path in files:
            path.write_bytes(b"this is not a picture" * 10)
    elif case == "truncated exr":
        files = exr_frames(folder, 3)
        files[1].write_bytes(files[1].read_bytes()[:300])
    elif case == "no media representation":
        files = [folder / "notes.txt"]
        folder.mkdir()
        files[0].write_text("a text file")
    else:  # frames of another size in an EXR sequence (ffmpeg's own readers rescale them)
        files = exr_frames(folder, 2)
        shutil.copy(exr_frames(tmp_path / "small", 1, size=(32, 18))[0], files[1])
    version_id = publish(database, settings, files)
    blobs_before = counts(database)["blobs"]
    with pytest.raises(MediaError, match=expected):
        media.make(database, settings, actor=SYSTEM, version_id=version_id)
    error, reps, events = unreviewed(database, version_id)
    assert error is not None and expected in error
    assert (reps, events) == (0, 0)
    assert counts(database)["blobs"] == blobs_before


def test_a_later_success_clears_the_reason(database, production, settings, tmp_path) -> None:
    version_id = publish(database, settings, png_frames(tmp_path / "comp", 3, size=(64, 36)))
    with UnitOfWork(database) as uow:
        uow.session.get(Version, version_id).media_error = "an earlier failure"
        uow.commit()
    media.make(database, settings, actor=SYSTEM, version_id=version_id)
    assert unreviewed(database, version_id) == (None, 3, 1)


def test_unknown_version_and_sizes_out_of_bounds(database, production, settings, tmp_path) -> None:
    with pytest.raises(NotFound, match="version 999999 not found"):
        media.make(database, settings, actor=SYSTEM, version_id=999999)
    version_id = publish(database, settings, png_frames(tmp_path / "comp", 2, size=(64, 36)))
    for height in (0, 63, 721, 4322, 10**9):
        with pytest.raises(InvalidInput, match="proxy height must be an even number from 64 to 4320"):
            media.make(database, settings, actor=SYSTEM, version_id=version_id, height=height)
    assert unreviewed(database, version_id) == (None, 0, 0)


def test_a_proxy_is_never_taller_than_its_source(database, production, settings, tmp_path) -> None:
    version_id = publish(database, settings, png_frames(tmp_path / "comp", 2, size=(101, 57)))
    result = media.make(database, settings, actor=SYSTEM, version_id=version_id, height=1080)
    assert (result.width, result.height) == (100, 56)  # even, aspect kept
    assert Fraction(result.width, result.height) == pytest.approx(Fraction(101, 57), rel=0.03)


def test_blob_count_is_per_content(database, production, settings, tmp_path) -> None:
    """Two versions of the same frames share their review media's blobs."""
    paths = png_frames(tmp_path / "comp", 4, size=(640, 360))
    one = publish(database, settings, paths)
    two = publish(database, settings, paths, shot="sh020")
    media.make(database, settings, actor=SYSTEM, version_id=one)
    with UnitOfWork(database) as uow:
        before = uow.session.scalar(select(func.count()).select_from(Blob))
    media.make(database, settings, actor=SYSTEM, version_id=two)
    with UnitOfWork(database) as uow:
        # sh020's burn-in differs: a new proxy; its thumbnails and sheet are the same bytes.
        assert uow.session.scalar(select(func.count()).select_from(Blob)) == before + 1


OCIO_CONFIG = """ocio_profile_version: 2

roles:
  default: scene
  scene_linear: scene

displays:
  Monitor:
    - !<View> {name: Halved, colorspace: half}

colorspaces:
  - !<ColorSpace>
    name: scene
    isdata: false

  - !<ColorSpace>
    name: half
    isdata: false
    to_scene_reference: !<MatrixTransform> {matrix: [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1]}
"""


def test_a_project_s_own_ocio_config(database, production, settings, tmp_path) -> None:
    """A display and view of the project's OCIO config (here one that halves scene values)
    replaces the default sRGB transform; a colour space it lacks is the version's reason."""
    config = tmp_path / "config.ocio"
    config.write_text(OCIO_CONFIG)
    ocio = {"config": str(config), "from": "scene", "display": "Monitor", "view": "Halved"}
    set_review(database, production.project_id, {"ocio": ocio})
    version_id = publish(database, settings, exr_frames(tmp_path / "plate", 3, grey=0.5), task="plate")
    media.make(database, settings, actor=SYSTEM, version_id=version_id)
    first = Image.open(review_files(database, version_id)[media.THUMBNAILS][0][2]).convert("RGB")
    assert all(abs(channel - 64) <= 4 for channel in first.getpixel((160, 160)))  # 0.5 / 2, not sRGB's 188

    set_review(
        database, production.project_id, {"ocio": {"config": str(config), "from": "scene", "to": "nope"}}
    )
    with pytest.raises(MediaError, match=r"colour conversion failed .*'nope' could not be found"):
        media.make(database, settings, actor=SYSTEM, version_id=version_id, force=True)
