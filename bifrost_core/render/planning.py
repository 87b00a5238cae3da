"""What a render job's command becomes for one chunk: the placeholders, checked at submit and
filled in by the farm, and where a job writes its frames.

A command is a list of arguments (never a shell string: nothing is re-split or interpreted);
each argument may hold placeholders in str.format syntax, e.g. `-s {first}` or `{first:04d}`.
Only the names below are allowed, bare (no `.attr` or `[index]`: a template must not reach
into Python objects) and without conversions.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bifrost_core.render.frames import Chunk

PLACEHOLDERS: dict[str, str] = {
    "scene": "the job's scene file",
    "output": "the frame path pattern, # for the frame number (e.g. /render/PRJ/job-12/SH010_light.####)",
    "output_dir": "the job's output folder",
    "first": "the chunk's first frame",
    "last": "the chunk's last frame",
    "step": "the chunk's frame step",
    "frames": "the chunk's frames in fileseq notation (1001-1010, 1-19x2)",
    "chunk": "the chunk's index (from 0)",
    "job": "the job's id",
}

# Frame padding of `{output}`: renderers pad to at least this many digits.
OUTPUT_PADDING = 4
_FORMATTER = string.Formatter()
# Format specs a template may use: alignment, sign, zero padding, a width of at most 3 digits,
# a precision and a type (`{first:04d}`, `{chunk:>3}`). Bounded, so that `{first:999999999}`
# cannot make a gigabyte argument.
_SPEC = re.compile(r"[<>=^]?[+ -]?0?\d{0,3}(?:\.\d{1,2})?[bdoxXs]?")


def placeholders_in(argument: str) -> list[str]:
    """The placeholder names `argument` uses; ValueError when it is not a valid template."""
    try:
        parsed = list(_FORMATTER.parse(argument))
    except ValueError as error:
        raise ValueError(f"{error} (write {{{{ and }}}} for literal braces)") from None
    names = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            known = ", ".join(f"{{{known}}}" for known in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{name}}} (known: {known})")
        if conversion is not None:
            raise ValueError(f"placeholder {{{name}}} takes no conversion")
        if spec and not _SPEC.fullmatch(spec):
            raise ValueError(
                f"format {spec[:20]!r} of {{{name}}} is not allowed (e.g. {{first:04d}}, width <= 999)"
            )
        names.append(name)
    return names


def check_command(command: Sequence[str]) -> set[str]:
    """The placeholders a command template uses; ValueError naming the argument that is wrong."""
    if not command:
        raise ValueError("the command is empty: give the program and its arguments")
    if not command[0].strip():
        raise ValueError("the command's program (its first argument) is empty")
    used: set[str] = set()
    for position, argument in enumerate(command, start=1):
        try:
            used.update(placeholders_in(argument))
        except ValueError as error:
            raise ValueError(f"argument {position} {argument[:80]!r}: {error}") from None
    # A format spec that does not suit the value ({scene:d}) fails only when filled in: try it.
    sample = values_for(
        job_id=1, output_dir="/render/job-1", stem="frames", scene="/scene", chunk=Chunk(0, 1, 1, 1)
    )
    for position, argument in enumerate(command, start=1):
        try:
            argument.format_map(sample)
        except (ValueError, TypeError) as error:
            raise ValueError(f"argument {position} {argument[:80]!r}: {error}") from None
    return used


def job_output_dir(render_root: Path, project_code: str, job_id: int) -> Path:
    return render_root / project_code / f"job-{job_id}"


def output_pattern(directory: str, stem: str) -> str:
    return f"{directory}/{stem}.{'#' * OUTPUT_PADDING}"


def values_for(*, job_id: int, output_dir: str, stem: str, scene: str | None, chunk: Chunk) -> dict[str, Any]:
    return {
        "scene": scene or "",
        "output": output_pattern(output_dir, stem),
        "output_dir": output_dir,
        "first": chunk.first,
        "last": chunk.last,
        "step": chunk.step,
        "frames": chunk.frames,
        "chunk": chunk.index,
        "job": job_id,
    }


def fill(command: Sequence[str], values: Mapping[str, Any]) -> list[str]:
    """The arguments of one chunk's command: each argument filled in on its own (a value with
    spaces stays one argument)."""
    return [argument.format_map(values) for argument in command]


def command_for(job: Any, chunk: Any) -> list[str]:
    """The command of `chunk` (a RenderChunk row) of `job` (its RenderJob row)."""
    values = values_for(
        job_id=job.id,
        output_dir=job.output_dir,
        stem=job.name,
        scene=job.scene,
        chunk=Chunk(chunk.index, chunk.first, chunk.last, chunk.step),
    )
    return fill(job.command, values)
