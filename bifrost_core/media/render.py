"""Review media from a movie or an image sequence, in one decoding pass of ffmpeg:

- the proxy: H.264 (yuv420p, even dimensions, faststart) at the project's height, with a
  burn-in of project, shot or asset, task and version (top left) and the frame number
  (bottom right), in the font shipped beside this module (so every host draws the same
  pixels);
- thumbnails of the first, middle and last frames (JPEG);
- a contact sheet of up to 16 frames evenly spread (JPEG).

Image sequences ffmpeg reads (PNG, JPEG, TIFF, DPX) go to it as files; EXR frames are read
by OpenImageIO, converted to display (default linear -> sRGB, or the project's OCIO
config) and piped to ffmpeg as raw RGB. The outputs are the same bytes for the same input
and settings (fixed encoder threads, bit-exact flags, no dates), so a rerun stores nothing new.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from bifrost_core.media.probe import EXR_SUFFIXES, MediaError, Probe, probe_file, tool
from bifrost_core.media.settings import DEFAULT_FROM, DEFAULT_TO, OcioSettings

FONT = Path(__file__).resolve().parent / "fonts" / "DejaVuSansMono.ttf"
# x264's output depends on its thread count: fixed, so every worker makes the same bytes.
ENCODER_THREADS = 4
PRESET = "veryfast"
CRF = 18
# A movie's sound, if it has any, goes into its proxy.
AUDIO = ["-map", "0:a?", "-c:a", "aac", "-b:a", "192k"]
SHEET_FRAMES = 16
SHEET_COLUMNS = 4
# A proxy that takes longer than this is stopped (a pathological input, a stuck filesystem).
ENCODE_TIMEOUT = 3600


@dataclass
class Source:
    """What to show: a movie (one path) or frames in order (a hole holds the frame before)."""

    kind: str  # "movie" or "frames"
    paths: list[Path]
    first_frame: int
    fps: Fraction
    probe: Probe

    @property
    def frames(self) -> int:
        return self.probe.frames if self.kind == "movie" else len(self.paths)


@dataclass
class MediaFiles:
    proxy: Path
    thumbnails: dict[int, Path]  # frame number -> file
    contact_sheet: Path
    width: int
    height: int
    frames: int
    fps: str
    command: list[str] = field(default_factory=list)


def proxy_size(probe: Probe, height: int) -> tuple[int, int]:
    """The proxy's (width, height): no taller than the source, even, aspect kept."""
    target = min(height, probe.height)
    target -= target % 2
    target = max(target, 2)
    width = round(probe.width * target / probe.height / 2) * 2
    return max(width, 2), target


def make_media(
    source: Source,
    folder: Path,
    *,
    height: int,
    thumbnail_height: int,
    label: str,
    ocio: OcioSettings | None = None,
) -> MediaFiles:
    """Write proxy.mp4, thumb.N.jpg and sheet.jpg into `folder` (an empty work folder)."""
    width, target = proxy_size(source.probe, height)
    frames = source.frames
    digits = max(4, len(str(source.first_frame + frames - 1)))
    label_file = folder / "label.txt"
    label_file.write_text(label, encoding="utf-8")
    thumbnail_indices = sorted({0, (frames - 1) // 2, frames - 1})
    sheet = _sheet_indices(frames)
    columns = min(SHEET_COLUMNS, len(sheet))
    rows = len(sheet) // columns
    font = _value(str(FONT))
    size = max(12, target // 30)
    box = f"fontcolor=white:box=1:boxcolor=black@0.55:boxborderw={max(2, size // 4)}"
    graph = ";".join(
        [
            f"[0:v]scale={width}:{target}:flags=bicubic,setsar=1,split=3[p][t][s]",
            f"[p]drawtext=fontfile={font}:textfile={_value(str(label_file))}:expansion=none:"
            f"fontsize={size}:x={size // 2}:y={size // 2}:{box},"
            f"drawtext=fontfile={font}:text='%{{eif\\:n+({source.first_frame})\\:d\\:{digits}}}':"
            f"fontsize={size}:x=w-tw-{size // 2}:y=h-th-{size // 2}:{box},format=yuv420p[proxy]",
            f"[t]select='{_picks(thumbnail_indices)}',scale=-2:{min(thumbnail_height, target)}[thumbs]",
            f"[s]select='{_picks(sheet)}',scale={_sheet_width(width)}:-2,"
            f"tile={columns}x{rows}:padding=4:margin=4[sheet]",
        ]
    )
    script = folder / "graph.txt"
    script.write_text(graph, encoding="utf-8")
    exact = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1"]
    command = [
        tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        *_input(source, folder, ocio),
        "-filter_complex_script", str(script),
        "-map", "[proxy]", *(AUDIO if source.kind == "movie" else []),
        "-c:v", "libx264", "-preset", PRESET, "-crf", str(CRF), "-profile:v", "high",
        "-g", str(max(1, round(source.fps))), "-threads:v", str(ENCODER_THREADS),
        "-movflags", "+faststart", *exact, str(folder / "proxy.mp4"),
        "-map", "[thumbs]", "-fps_mode", "passthrough", "-q:v", "3", *exact, str(folder / "thumb.%d.jpg"),
        "-map", "[sheet]", "-frames:v", "1", "-q:v", "3", *exact, str(folder / "sheet.jpg"),
    ]  # fmt: skip
    if source.kind == "frames" and _read_by_oiio(source):
        _run_piped(command, source, ocio)
    else:
        _run(command)
    made = [folder / f"thumb.{n}.jpg" for n in range(1, len(thumbnail_indices) + 1)]
    missing = [path.name for path in [folder / "proxy.mp4", folder / "sheet.jpg", *made] if not path.exists()]
    if missing:
        raise MediaError(f"ffmpeg made no {', '.join(missing)} (the source may be truncated)")
    return MediaFiles(
        proxy=folder / "proxy.mp4",
        thumbnails={
            source.first_frame + index: path for index, path in zip(thumbnail_indices, made, strict=True)
        },
        contact_sheet=folder / "sheet.jpg",
        width=width,
        height=target,
        frames=frames,
        fps=f"{source.fps.numerator}/{source.fps.denominator}",
        command=command,
    )


def _input(source: Source, folder: Path, ocio: OcioSettings | None) -> list[str]:
    rate = f"{source.fps.numerator}/{source.fps.denominator}"
    if source.kind == "movie":
        return ["-i", str(source.paths[0])]
    if _read_by_oiio(source):
        probe = source.probe
        return [
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{probe.width}x{probe.height}",
            "-framerate", rate, "-i", "pipe:0",
        ]  # fmt: skip
    # ffmpeg reads a numbered pattern: the frames are linked (a hole: the frame before) as
    # 000000.ext, 000001.ext, ... in the work folder, whatever the stored files are called.
    links = folder / "frames"
    links.mkdir()
    suffix = source.paths[0].suffix.lower()
    for index, path in enumerate(source.paths):
        os.symlink(path, links / f"{index:06d}{suffix}")
    return ["-framerate", rate, "-start_number", "0", "-i", str(links / f"%06d{suffix}")]


def _read_by_oiio(source: Source) -> bool:
    return source.probe.reader == "openimageio" or source.paths[0].suffix.lower() in EXR_SUFFIXES


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, timeout=ENCODE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"ffmpeg took more than {ENCODE_TIMEOUT} s") from None
    if done.returncode != 0:
        raise MediaError(f"ffmpeg could not read the source: {_tail(done.stderr)}")


def _run_piped(command: list[str], source: Source, ocio: OcioSettings | None) -> None:
    """ffmpeg fed raw RGB frames from OpenImageIO, one at a time (memory: one frame)."""
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    failure: BaseException | None = None
    try:
        for pixels in display_frames(source, ocio):
            process.stdin.write(pixels)  # type: ignore[union-attr]
    except BrokenPipeError:
        pass  # ffmpeg stopped: its message says why
    except BaseException as exc:
        failure = exc
        process.kill()
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()  # type: ignore[union-attr]
        try:
            process.wait(timeout=ENCODE_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join()
    if failure is not None:
        raise failure
    if process.returncode != 0:
        raise MediaError(f"ffmpeg failed on the frames: {_tail(b''.join(stderr))}")


def display_frames(source: Source, ocio: OcioSettings | None) -> Iterator[bytes]:
    """Each frame as 8-bit RGB for display: converted from scene-linear to sRGB (or through
    the project's OCIO config), alpha dropped, one channel shown as grey."""
    import OpenImageIO as oiio

    algo = oiio.ImageBufAlgo
    probe = source.probe
    previous: bytes | None = None
    previous_path: Path | None = None
    for path in source.paths:
        if path == previous_path and previous is not None:
            yield previous  # a hole in the sequence holds the frame before
            continue
        image = oiio.ImageBuf(str(path))
        spec = image.spec()
        if image.has_error or spec.width <= 0:
            raise MediaError(
                f"{path.name}: cannot read the image ({_first(image.geterror() or oiio.geterror())})"
            )
        if (spec.width, spec.height) != (probe.width, probe.height):
            raise MediaError(
                f"{path.name}: {spec.width}x{spec.height}, not {probe.width}x{probe.height} as frame one"
            )
        # Alpha dropped; a single channel shown as grey.
        rgb = algo.channels(image, (0, 1, 2) if spec.nchannels >= 3 else (0, 0, 0))
        if ocio is None:
            shown = algo.colorconvert(rgb, DEFAULT_FROM, DEFAULT_TO)
        elif ocio.display is not None:
            shown = algo.ociodisplay(
                rgb, ocio.display, ocio.view, fromspace=ocio.from_space, colorconfig=ocio.config
            )
        else:
            shown = algo.colorconvert(rgb, ocio.from_space, ocio.to, colorconfig=ocio.config)
        if shown.has_error:
            raise MediaError(f"{path.name}: colour conversion failed ({_first(shown.geterror())})")
        pixels = shown.get_pixels(oiio.UINT8)
        if pixels is None or shown.has_error:
            raise MediaError(
                f"{path.name}: cannot read the image ({_first(shown.geterror() or oiio.geterror())})"
            )
        previous, previous_path = pixels.tobytes(), path
        yield previous


def source_of(kind: str, paths: list[Path], first_frame: int, fps: Fraction) -> Source:
    """Probe a movie or a sequence's first frame and describe the source."""
    if not paths:
        raise MediaError("no frames")
    probe = probe_file(paths[0], count_frames=kind == "movie")
    if kind == "movie":
        from bifrost_core.media.probe import fps_of

        fps = fps_of(probe.fps) or fps
    else:
        probe = probe.model_copy(update={"frames": len(paths)})
    return Source(kind=kind, paths=paths, first_frame=first_frame, fps=fps, probe=probe)


def _sheet_indices(frames: int) -> list[int]:
    count = min(frames, SHEET_FRAMES)
    columns = min(SHEET_COLUMNS, count)
    count = count // columns * columns  # full rows: the tile filter writes a full grid
    if count == 1:
        return [0]
    return sorted({round(i * (frames - 1) / (count - 1)) for i in range(count)})


def _sheet_width(width: int) -> int:
    return max(16, min(320, width) // 2 * 2)


def _picks(indices: list[int]) -> str:
    return "+".join(f"eq(n\\,{index})" for index in indices)


def _value(text: str) -> str:
    """A path as a filter option's value in a filter graph: quoted, with `'` escaped."""
    return "'" + text.replace("'", "'\\\\''") + "'"


def _tail(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return " / ".join(lines[-3:])[:500] or "no message"


def _first(text: str) -> str:
    return (text.strip().splitlines() or ["unknown error"])[0][:300]
