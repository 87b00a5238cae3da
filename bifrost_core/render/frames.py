"""Frame sets (fileseq notation: `1001-1100`, `1-100x2`, `1,5,10-20`) and cutting them into chunks.

Every part of a spec is bounded before fileseq sees it: fileseq enumerates `y` and `:` ranges
frame by frame (seconds for a few million), so a typed `1-99999999:3` must be refused by
arithmetic, not by trying.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bifrost_core.errors import InvalidInput

# 100,000 frames is over an hour at 24 fps, more than any one shot; beyond it, fileseq's parsing
# alone takes seconds. 20,000 chunks a job keeps a submit well under a second (10,000 frames
# at chunk size 1 fit).
MAX_FRAMES = 100_000
MAX_CHUNKS = 20_000
MAX_FRAME = 10_000_000
MAX_SPEC_LENGTH = 10_000

# One comma-separated part, as fileseq reads it, integers only: a frame, or a range with an
# optional step (`x` every step-th, `y` all but those, `:` every frame, coarse steps first).
_PART = re.compile(r"(-?\d+)(?:-(-?\d+)(?:([x:y])(-?\d+))?)?")


@dataclass(frozen=True, slots=True)
class FrameSet:
    spec: str  # normalised fileseq notation of `frames`
    frames: tuple[int, ...]  # sorted, distinct


@dataclass(frozen=True, slots=True)
class Chunk:
    """An arithmetic progression of frames: `first`, `first + step`, ..., `last`."""

    index: int
    first: int
    last: int
    step: int

    @property
    def frame_count(self) -> int:
        return (self.last - self.first) // self.step + 1

    @property
    def frames(self) -> str:
        """The chunk's frames in fileseq notation."""
        if self.first == self.last:
            return str(self.first)
        if self.step == 1:
            return f"{self.first}-{self.last}"
        return f"{self.first}-{self.last}x{self.step}"


def parse_frames(spec: str) -> FrameSet:
    """The frames of `spec`, or InvalidInput saying what is wrong with it."""
    import fileseq  # here: only submitting a render needs it

    text = spec.strip()
    if not text:
        raise InvalidInput("the frame set is empty")
    if len(text) > MAX_SPEC_LENGTH:
        raise InvalidInput(f"the frame set is longer than {MAX_SPEC_LENGTH} characters")
    parts = [_checked_part(part.strip()) for part in text.split(",")]
    if sum(size for _, size in parts) > MAX_FRAMES:
        raise InvalidInput(f"the frame set {text[:80]!r} has more than {MAX_FRAMES:,} frames")
    try:
        frames = tuple(
            sorted({int(frame) for frame in fileseq.FrameSet(",".join(part for part, _ in parts))})
        )
    except fileseq.ParseException as error:
        raise InvalidInput(f"invalid frame set {text[:80]!r}: {error}") from None
    if not frames:
        raise InvalidInput(f"the frame set {text[:80]!r} has no frames")
    # framesToFrameRange: FrameSet.from_iterable's notation, 5 times faster on sorted frames.
    return FrameSet(spec=fileseq.framesToFrameRange(frames, sort=False), frames=frames)


def _checked_part(part: str) -> tuple[str, int]:
    """`part` rewritten with plain numbers (`0001001` -> `1001`: what fileseq is given), and at
    least the number of frames it names; InvalidInput when it is not a valid part."""
    match = _PART.fullmatch(part)
    if match is None:
        raise InvalidInput(
            f"invalid frame set part {part[:80]!r}: expected a frame (1001), a range (1001-1100) "
            "or a range with a step (1-100x2)"
        )
    start_text, end_text, kind, step_text = match.groups()
    start = _number(start_text)
    end = start if end_text is None else _number(end_text)
    span = abs(end - start) + 1
    if step_text is None:
        return (str(start) if end_text is None else f"{start}-{end}"), span
    step = _number(step_text)
    if step < 1:
        raise InvalidInput(f"invalid frame set part {part[:80]!r}: the step must be a positive number")
    return f"{start}-{end}{kind}{step}", span if kind in (":", "y") else (span - 1) // step + 1


def _number(text: str) -> int:
    """A frame number or step within +-MAX_FRAME. Checked by its digits first: int() refuses
    strings of thousands of digits (and would be slow on them)."""
    negative, digits = text.startswith("-"), text.lstrip("-").lstrip("0") or "0"
    if len(digits) > len(str(MAX_FRAME)) or int(digits) > MAX_FRAME:
        shown = text if len(text) <= 20 else f"{text[:20]}..."
        raise InvalidInput(f"frame {shown} is out of range (frames are within +-{MAX_FRAME:,})")
    value = -int(digits) if negative else int(digits)
    return value


def cut_chunks(frames: tuple[int, ...], chunk_size: int) -> list[Chunk]:
    """Sorted distinct `frames` cut into arithmetic progressions of at most `chunk_size` frames,
    in order, so that a renderer taking start/end/step (`-s -e -j`) can render each chunk."""
    if chunk_size < 1:
        raise InvalidInput("the chunk size must be at least 1")
    if -(-len(frames) // chunk_size) > MAX_CHUNKS:
        raise _too_many_chunks(len(frames), chunk_size)
    chunks: list[Chunk] = []
    count = len(frames)
    i = 0
    while i < count:
        first = frames[i]
        if chunk_size == 1 or i + 1 == count:
            chunks.append(Chunk(len(chunks), first, first, 1))
            i += 1
            continue
        step = frames[i + 1] - first
        j = i + 1
        # Extend while the next frame keeps the step and the chunk has room.
        while j + 1 < count and j + 1 - i < chunk_size and frames[j + 1] - frames[j] == step:
            j += 1
        chunks.append(Chunk(len(chunks), first, frames[j], step))
        i = j + 1
    if len(chunks) > MAX_CHUNKS:  # an irregular frame set cuts into more, shorter chunks
        raise _too_many_chunks(len(frames), chunk_size)
    return chunks


def _too_many_chunks(frames: int, chunk_size: int) -> InvalidInput:
    return InvalidInput(
        f"{frames:,} frames in chunks of at most {chunk_size} make more than {MAX_CHUNKS:,} chunks: "
        "give a larger chunk size"
    )
