"""Helpers of the ingest tests that make real files."""

from __future__ import annotations

from pathlib import Path


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def frames(
    folder: Path, name: str, first: int, last: int, *, size: int = 2048, salt: bytes = b""
) -> list[Path]:
    """An image-sequence-like set of files with distinct content per frame."""
    return [
        write(folder / f"{name}.{frame:04d}.exr", (f"{name}{frame}".encode() + salt) * (size // 8))
        for frame in range(first, last + 1)
    ]
