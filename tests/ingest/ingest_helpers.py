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
    """An image-sequence-like set of files of `size` bytes with distinct content per frame."""
    return [
        write(folder / f"{name}.{frame:04d}.exr", content(f"{name}{frame}".encode() + salt, size))
        for frame in range(first, last + 1)
    ]


def content(seed: bytes, size: int) -> bytes:
    return (seed * (size // len(seed) + 1))[:size]
