"""The demo's delivery: a vendor's comp renders for two shots (real image frames and a
movie), then their ingest into the shots' existing comp tasks.

Files are generated once (Pillow frames, an H.264 movie made by ffmpeg from them) and
left in place, so a second `bifrost demo` ingests the same bytes and creates nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bifrost_core.demo import Demo

# (sequence, shot) of the delivery; 24 frames each, numbered from 1001.
SHOTS = [("SQ010", "SH010"), ("SQ010", "SH020")]
FRAMES = range(1001, 1025)
SIZE = (320, 180)


def make_delivery(root: Path) -> Path:
    """Write the delivery under root (only the files that are missing); returns root."""
    from PIL import Image, ImageDraw

    for index, (sequence, shot) in enumerate(SHOTS):
        folder = root / sequence / shot / "comp"
        folder.mkdir(parents=True, exist_ok=True)
        for frame in FRAMES:
            path = folder / f"comp.{frame}.png"
            if path.exists():
                continue
            image = Image.new("RGB", SIZE, (20 + 60 * index, 40, 90))
            draw = ImageDraw.Draw(image)
            x = (frame - FRAMES.start) * (SIZE[0] - 40) // len(FRAMES)
            draw.rectangle((x, 60, x + 40, 120), fill=(240, 200, 60))
            draw.text((10, 10), f"{sequence}/{shot} comp {frame}", fill=(255, 255, 255))
            # Written under a temporary name: an interrupted demo never leaves half a frame.
            partial = path.with_suffix(".png.part")
            image.save(partial, format="PNG")
            partial.rename(path)
        movie = folder / "comp.mp4"
        if not movie.exists():
            _encode(folder / "comp.%04d.png", movie)
    return root


def _encode(pattern: Path, movie: Path) -> None:
    import imageio_ffmpeg

    partial = movie.with_name("comp.part.mp4")
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-loglevel", "error", "-y",
        "-framerate", "24", "-start_number", str(FRAMES.start), "-i", str(pattern),
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-threads", "1",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        str(partial),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    partial.rename(movie)


def ingest_delivery(demo: Demo) -> str:
    """Generate the delivery in the home and run the ingest flow on it (embedded Prefect)."""
    from bifrost_core.errors import InvalidInput
    from cli.flows import prefect_env, server_ready

    server = prefect_env()  # starts while the frames and the movie are made
    root = make_delivery(demo.settings.home / "deliveries" / "vendor-comp")
    from flows.ingest import ingest

    server_ready(server)

    summary = ingest(actor=demo.actor.username, project=demo.project, source=str(root))
    if summary.problems:
        first = summary.problems[0]
        raise InvalidInput(f"the demo delivery did not ingest: {first.path}: {first.message}")
    return (
        f"{len(summary.created)} versions created, {summary.known} already ingested "
        f"({summary.files} files, {summary.bytes:,} bytes from {root})"
    )
