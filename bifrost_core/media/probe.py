"""What a media file is: resolution, frame rate, codec, frame count, colour information.

ffprobe (JSON) reads movies and most image formats; OpenImageIO reads EXR (every
compression, tiled and multi-part files, which ffmpeg's decoder does not all handle) and
whatever ffprobe refuses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bifrost_core.errors import ConfigError, InvalidInput

PROBE_TIMEOUT = 60
EXR_SUFFIXES = {".exr", ".sxr"}


class MediaError(InvalidInput):
    """A file that is not media Bifrost can read (its reason is recorded on the version)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class Probe(BaseModel):
    reader: str  # "ffprobe" or "openimageio"
    codec: str
    width: int
    height: int
    frames: int
    fps: str | None = None  # a rational, "24/1"; None for a still image
    pixel_format: str = ""
    colour: dict[str, str] = {}


def tool(name: str) -> str:
    """The path of ffmpeg or ffprobe (Debian's: `make tools`), or a ConfigError."""
    found = shutil.which(name)
    if found is None:
        raise ConfigError(f"{name} is not installed (Debian: apt-get install ffmpeg; `make tools`)")
    return found


def probe_file(path: Path, *, count_frames: bool = False) -> Probe:
    """Probe one file: ffprobe first, OpenImageIO for EXR or when ffprobe cannot read it."""
    if path.suffix.lower() in EXR_SUFFIXES:
        return probe_image(path)
    try:
        return _ffprobe(path, count_frames=count_frames)
    except MediaError as refused:
        if count_frames:  # a movie: OpenImageIO reads no movies
            raise
        try:
            return probe_image(path)
        except MediaError as exc:
            raise MediaError(
                f"{path.name}: not media ffprobe or OpenImageIO can read ({refused.reason}; {exc.reason})"
            ) from None


def _ffprobe(path: Path, *, count_frames: bool) -> Probe:
    command = [tool("ffprobe"), "-v", "error", "-select_streams", "v:0", "-show_streams", "-of", "json"]
    if count_frames:
        # Packets, not decoded frames: counted without decoding, exact for video streams.
        command.append("-count_packets")
    try:
        done = subprocess.run([*command, str(path)], capture_output=True, timeout=PROBE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"ffprobe took more than {PROBE_TIMEOUT} s on {path.name}") from None
    streams = json.loads(done.stdout or b"{}").get("streams") if done.returncode == 0 else None
    if not streams:
        reason = _last_line(done.stderr) or "no video stream"
        raise MediaError(f"{path.name}: not media ffprobe can read ({reason})", reason)
    stream: dict[str, Any] = streams[0]
    frames = int(stream.get("nb_read_packets") or stream.get("nb_frames") or 1)
    fps = stream.get("avg_frame_rate") or stream.get("r_frame_rate")
    if not fps or fps == "0/0":
        fps = stream.get("r_frame_rate")
    colour = {
        key: str(stream[field])
        for key, field in (
            ("space", "color_space"),
            ("transfer", "color_transfer"),
            ("primaries", "color_primaries"),
            ("range", "color_range"),
        )
        if stream.get(field) not in (None, "unknown")
    }
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if width <= 0 or height <= 0 or frames <= 0:
        raise MediaError(f"{path.name}: a video stream without pictures")
    return Probe(
        reader="ffprobe",
        codec=str(stream.get("codec_name", "")),
        width=width,
        height=height,
        frames=frames,
        fps=fps if count_frames and fps and fps != "0/0" else None,
        pixel_format=str(stream.get("pix_fmt", "")),
        colour=colour,
    )


def probe_image(path: Path) -> Probe:
    """One image through OpenImageIO (its first subimage: what a proxy shows)."""
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(str(path))
    if image is None:
        reason = _first_line(oiio.geterror())
        raise MediaError(f"{path.name}: not an image OpenImageIO can read ({reason})", reason)
    try:
        spec = image.spec()
        colour = {
            "space": spec.get_string_attribute("oiio:ColorSpace"),
            "channels": ",".join(spec.channelnames),
            "compression": spec.get_string_attribute("compression"),
        }
        return Probe(
            reader="openimageio",
            codec=image.format_name(),
            width=spec.width,
            height=spec.height,
            frames=1,
            pixel_format=str(spec.format),
            colour={key: value for key, value in colour.items() if value},
        )
    finally:
        image.close()


def fps_of(text: str | None) -> Fraction | None:
    if not text:
        return None
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _last_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["unknown format"])[0][:300]
