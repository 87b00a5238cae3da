"""Real media for the review-media tests: EXR frames written with the OpenImageIO wheel, PNG
frames with Pillow, a movie with ffmpeg; publishing them as a version; reading proxies back
with ffprobe and ffmpeg."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bifrost_core.config import Settings
from bifrost_core.db.database import Database
from bifrost_core.ingest import batches, planning
from bifrost_core.ingest.schemas import PublishRequest
from bifrost_core.scope import SYSTEM

FIRST = 1001


def exr_frames(
    folder: Path, count: int, *, size: tuple[int, int] = (320, 180), grey: float = 0.18
) -> list[Path]:
    """Half-float RGBA EXRs (PIZ): a scene-linear grey field with a bright bar moving across."""
    import numpy as np
    import OpenImageIO as oiio

    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    paths = []
    for index in range(count):
        pixels = np.full((height, width, 4), grey, dtype=np.float32)
        pixels[..., 3] = 1.0
        x = index * (width - 20) // max(1, count - 1)
        pixels[height // 4 : height // 2, x : x + 20, :3] = 4.0  # above 1: clipped by the display
        path = folder / f"plate.{FIRST + index}.exr"
        spec = oiio.ImageSpec(width, height, 4, "half")
        spec.attribute("compression", "piz")
        output = oiio.ImageOutput.create(str(path))
        assert output is not None and output.open(str(path), spec), oiio.geterror()
        assert output.write_image(pixels), output.geterror()
        output.close()
        paths.append(path)
    return paths


def png_frames(
    folder: Path, count: int, *, size: tuple[int, int] = (640, 360), colour=(30, 40, 90), moving: bool = True
) -> list[Path]:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        image = Image.new("RGB", size, colour)
        if moving:
            x = index * (size[0] - 40) // max(1, count - 1)
            ImageDraw.Draw(image).rectangle((x, size[1] // 3, x + 40, size[1] // 2), fill=(240, 200, 60))
        path = folder / f"comp.{FIRST + index}.png"
        image.save(path)
        paths.append(path)
    return paths


def movie(path: Path, *, seconds: int = 2, rate: int = 25, size: str = "640x360") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}",
         "-t", str(seconds), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def publish(
    database: Database, settings: Settings, files: list[Path], *, shot: str = "sh010", task: str = "comp"
) -> int:
    """Publish `files` as one version of sq010/`shot` `task` (the publish flow's own steps); its id."""
    request = PublishRequest(
        project="DEMO", sequence="sq010", shot=shot, task=task, files=[str(path) for path in files]
    )
    plan = planning.plan_publish(database, settings, request=request)
    summary = batches.run_batch(
        database,
        settings,
        project=plan.project,
        tier=plan.tier,
        source=plan.source,
        versions=plan.pending,
        actor=SYSTEM,
    )
    assert summary.created, summary
    return summary.created[0].version_id


def ffprobe(path: Path) -> dict:
    """The first video stream of `path`, with its packets counted, and the format's duration."""
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_packets",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    answer = json.loads(done.stdout)
    video = next(stream for stream in answer["streams"] if stream["codec_type"] == "video")
    return {
        **video,
        "duration": float(answer["format"]["duration"]),
        "format": answer["format"]["format_name"],
    }


def frame_of(movie_path: Path, index: int, out: Path) -> Path:
    """Frame `index` (from 0) of a movie as a PNG."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(movie_path), "-vf", f"select=eq(n\\,{index})",
         "-frames:v", "1", str(out)],
        check=True,
    )  # fmt: skip
    return out
