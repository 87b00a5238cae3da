"""Scan a delivery or publish folder into representations ready to plan: image sequences,
movies and single files, plus every file that cannot be taken, with the reason.

Nothing is dropped silently: unreadable files and folders, broken links, symlink loops,
links escaping the source root, links to folders (walked under their real path instead),
special files and names that are not valid UTF-8 all become problems. Names with spaces
or non-ASCII characters and zero-byte files are ordinary items. Output order is
deterministic (sorted by relative path).

A sequence is two or more files of one folder named ``<name><sep><frame><ext>`` with
`sep` ``.`` or ``_``, the same name, separator, extension and frame padding
(``plate.1001.exr``, ``plate_01001.exr``); one such file is a one-frame sequence when its
extension is an image format. Movies (.mov, .mp4, .mxf, …) are always items of their own.

Fast on large trees: one os.scandir per folder and one stat per file, no Path objects.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import stat
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import fileseq

from bifrost_core.storage.errors import SourceUnreadable

# The representation kinds of bifrost_core.versions that a scan can tell apart.
ItemKind = Literal["frames", "movie", "file"]

MOVIE_EXTENSIONS = frozenset(
    {"mov", "mp4", "m4v", "mxf", "avi", "mkv", "webm", "mpg", "mpeg", "wmv", "r3d", "braw"}
)
IMAGE_EXTENSIONS = frozenset(
    {
        "exr", "dpx", "cin", "tif", "tiff", "png", "jpg", "jpeg", "tga", "hdr", "rgb", "sgi",
        "bmp", "webp", "jp2", "j2c", "psd", "iff", "tx", "ari", "heic", "avif",
    }
)  # fmt: skip

# <name><sep><frame><ext>; the name is lazy so that the frame is the last digit group
# before an extension made of alphabetic-led parts ("bgeo.sc", "exr", or none). DOTALL: a
# name holding a newline is split like any other.
_FRAME_NAME = re.compile(r"(?P<name>.*?)(?P<sep>[._])(?P<frame>\d+)(?P<ext>(?:\.[A-Za-z]\w*)*)", re.DOTALL)
_EXTENSION = re.compile(r".+?(?P<ext>(?:\.[A-Za-z]\w*)+)", re.DOTALL)
# Longer digit groups (dates, ids) are part of the name: frames must fit a 32-bit integer.
_MAX_FRAME_DIGITS = 9


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """One file to store: `path` to read it, `rel` (POSIX, relative to the scan root),
    size and mtime (to recognise it on a rerun), and its frame in a sequence."""

    path: str
    rel: str
    size: int
    mtime_ns: int
    frame: int | None = None


@dataclass(frozen=True)
class ScanItem:
    """One representation found: a sequence of frames (kind "frames"), a movie, or a
    single file.

    `rel` is the relative path of a movie or file, and for a sequence its fileseq-style
    name with range and ``#``/``@`` padding (``sh010/plate.1001-1100#.exr``). `name` is
    the file name without frame and extension, `ext` the extension without its dot.
    For sequences: `frame_range` (``1001-1050,1052-1100``), `first`, `last`, `padding`
    (digits), `missing` (the gaps, ``""`` if none) and `pattern` (printf style,
    ``sh010/plate.%04d.exr``, which names the sequence whatever frames it has); None
    otherwise.
    """

    kind: ItemKind
    rel: str
    directory: str
    name: str
    ext: str
    files: tuple[ScannedFile, ...]
    frame_range: str | None = None
    first: int | None = None
    last: int | None = None
    padding: int | None = None
    missing: str | None = None
    pattern: str | None = None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @cached_property
    def frame_set(self) -> fileseq.FrameSet | None:
        """The frames as a fileseq FrameSet (None unless a sequence)."""
        return None if self.frame_range is None else fileseq.FrameSet(self.frame_range)


@dataclass(frozen=True, slots=True)
class ScanProblem:
    """A file or folder that was not taken: its relative path and a one-line reason."""

    rel: str
    reason: str


@dataclass(frozen=True)
class ScanResult:
    """What a scan found under `root` (absolute): items and problems, both sorted."""

    root: str
    items: list[ScanItem]
    problems: list[ScanProblem]

    @property
    def files(self) -> list[ScannedFile]:
        return [f for item in self.items for f in item.files]

    @property
    def size(self) -> int:
        return sum(item.size for item in self.items)


def scan(root: str | os.PathLike[str]) -> ScanResult:
    """Scan a folder (or a single file) into items and problems; see the module docstring.

    Raises SourceUnreadable if `root` itself does not exist or cannot be read.
    """
    top = os.path.abspath(root)
    try:
        st = os.stat(top)
    except OSError as exc:
        raise SourceUnreadable(top, f"cannot scan: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(st.st_mode):
        if not stat.S_ISREG(st.st_mode) or not os.access(top, os.R_OK):
            raise SourceUnreadable(top, "cannot scan: not a readable file or folder")
        parent, name = os.path.split(top)
        return ScanResult(parent, _items("", [(top, name, st.st_size, st.st_mtime_ns)]), [])
    walker = _Walker(top)
    walker.walk()
    items = [item for directory, files in walker.files.items() for item in _items(directory, files)]
    items.sort(key=lambda item: item.rel)
    walker.problems.sort(key=lambda p: p.rel)
    return ScanResult(top, items, walker.problems)


class _Walker:
    """Walks real folders only. A symlink to a folder inside the root always leads to a
    folder walked under its real path, so it is reported (loop or alias), not followed;
    symlinks to files inside the root are taken (held frames are often links)."""

    def __init__(self, top: str) -> None:
        self.top = top
        self.real_top = os.path.realpath(top)
        self.files: dict[str, list[_Entry]] = defaultdict(list)
        self.problems: list[ScanProblem] = []
        # (device, inode) of each folder walked: a bind mount can still make a loop
        self.seen_dirs: dict[tuple[int, int], str] = {}

    def problem(self, rel: str, reason: str) -> None:
        self.problems.append(ScanProblem(rel, reason))

    def walk(self) -> None:
        st = os.stat(self.top)
        self.seen_dirs[(st.st_dev, st.st_ino)] = ""
        stack = [(self.top, "")]
        while stack:
            path, rel = stack.pop()
            stack.extend(reversed(self.scan_dir(path, rel)))

    def scan_dir(self, path: str, rel: str) -> list[tuple[str, str]]:
        """Record the files of one folder; return its subfolders to walk."""
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.problem(rel or ".", f"cannot list folder: {exc.strerror or exc}")
            return []
        prefix = f"{rel}/" if rel else ""
        subdirs = []
        files = self.files[rel]
        for entry in entries:
            entry_rel = prefix + entry.name
            if not entry.name.isascii() and not _valid_name(entry.name):
                self.problem(_printable(entry_rel), "name is not valid UTF-8")
                continue
            try:
                if entry.is_symlink():
                    st = self.follow_link(entry, entry_rel)
                    if st is None:
                        continue
                elif entry.is_dir(follow_symlinks=False):
                    if self.first_visit(entry.stat(follow_symlinks=False), entry_rel):
                        subdirs.append((entry.path, entry_rel))
                    continue
                else:
                    st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                self.problem(entry_rel, f"cannot read: {exc.strerror or exc}")
                continue
            if not stat.S_ISREG(st.st_mode):
                self.problem(entry_rel, f"not a regular file ({_kind(st.st_mode)})")
            elif not os.access(entry.path, os.R_OK):
                self.problem(entry_rel, "cannot read: permission denied")
            else:
                files.append((entry.path, entry.name, st.st_size, st.st_mtime_ns))
        return subdirs

    def follow_link(self, entry: os.DirEntry[str], rel: str) -> os.stat_result | None:
        """The stat of a symlink's target if it is a file that may be taken, else None
        (and the problem recorded)."""
        link = os.readlink(entry.path)
        try:
            real = os.path.realpath(entry.path, strict=True)
        except FileNotFoundError:
            self.problem(rel, f"broken symlink (-> {link})")
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.problem(rel, f"symlink loop (-> {link})")
            else:
                self.problem(rel, f"cannot follow symlink (-> {link}): {exc.strerror or exc}")
            return None
        if real != self.real_top and not real.startswith(self.real_top + os.sep):
            self.problem(rel, f"symlink points outside the source folder (-> {link})")
            return None
        st = os.stat(entry.path)
        if not stat.S_ISDIR(st.st_mode):
            return st
        target = os.path.relpath(real, self.real_top).replace(os.sep, "/")
        if target == "." or rel.startswith(target + "/"):
            self.problem(rel, f"symlink loop (back to {'the source folder' if target == '.' else target})")
        else:
            self.problem(rel, f"symlink to a folder scanned as {target}")
        return None

    def first_visit(self, st: os.stat_result, rel: str) -> bool:
        """False (and a problem) for a folder already walked under another path."""
        key = (st.st_dev, st.st_ino)
        seen = self.seen_dirs.get(key)
        if seen is None:
            self.seen_dirs[key] = rel
            return True
        self.problem(rel, f"folder already scanned as {seen or 'the source folder'} (a mount loop?)")
        return False


def _valid_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes come back as lone surrogates
        return False
    return True


def _printable(rel: str) -> str:
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "special file"


# --------------------------------------------------------------------------- grouping


# A file found by the walk: (path, name, size, mtime_ns); ScannedFile is made once grouped.
_Entry = tuple[str, str, int, int]


def _items(directory: str, entries: Iterable[_Entry]) -> list[ScanItem]:
    groups: dict[tuple[str, str, str], list[tuple[str, _Entry]]] = defaultdict(list)
    items: list[ScanItem] = []
    prefix = f"{directory}/" if directory else ""
    for entry in entries:
        m = _FRAME_NAME.fullmatch(entry[1])
        if m is None or len(m["frame"]) > _MAX_FRAME_DIGITS:
            items.append(_single(directory, prefix, entry))
        else:
            groups[(m["name"], m["sep"], m["ext"])].append((m["frame"], entry))
    for (name, sep, ext), members in groups.items():
        last = _last_ext(ext)
        if last in MOVIE_EXTENSIONS:
            items.extend(_single(directory, prefix, entry) for _, entry in members)
            continue
        for padding, frames in _by_padding(members):
            if len(frames) == 1 and last not in IMAGE_EXTENSIONS:
                items.append(_single(directory, prefix, frames[0][1]))
            else:
                items.append(_sequence(directory, prefix, name, sep, ext, padding, frames))
    return items


def _last_ext(ext: str) -> str:
    return ext.rsplit(".", 1)[-1].lower()


def _single(directory: str, prefix: str, entry: _Entry) -> ScanItem:
    path, base, size, mtime_ns = entry
    m = _EXTENSION.fullmatch(base)
    ext = m["ext"] if m else ""
    kind: ItemKind = "movie" if _last_ext(ext) in MOVIE_EXTENSIONS else "file"
    f = ScannedFile(path, prefix + base, size, mtime_ns)
    return ScanItem(kind, f.rel, directory, base[: len(base) - len(ext)], ext[1:], (f,))


def _by_padding(
    members: Sequence[tuple[str, _Entry]],
) -> list[tuple[int, list[tuple[int, _Entry]]]]:
    """Split one name's frames by padding: ``0998`` (padded to 4) and ``1001`` (4 digits)
    go together, ``01001`` (padded to 5) does not."""
    padded: dict[int, list[tuple[int, _Entry]]] = defaultdict(list)
    plain: list[tuple[str, _Entry]] = []
    for digits, f in members:
        if len(digits) > 1 and digits[0] == "0":
            padded[len(digits)].append((int(digits), f))
        else:
            plain.append((digits, f))
    widths = sorted(padded)
    loose: list[tuple[str, _Entry]] = []
    for digits, f in plain:
        fits = [w for w in widths if w <= len(digits)]
        if fits:
            padded[fits[-1]].append((int(digits), f))
        else:
            loose.append((digits, f))
    groups = [(w, padded[w]) for w in widths]
    if loose:
        groups.append((min(len(d) for d, _ in loose), [(int(d), f) for d, f in loose]))
    for _, frames in groups:
        frames.sort(key=lambda pair: pair[0])
    return groups


def _sequence(
    directory: str,
    prefix: str,
    name: str,
    sep: str,
    ext: str,
    padding: int,
    frames: list[tuple[int, _Entry]],
) -> ScanItem:
    numbers = [n for n, _ in frames]
    files = tuple(ScannedFile(path, prefix + base, size, mtime, n) for n, (path, base, size, mtime) in frames)
    ranges = _ranges(numbers)
    return ScanItem(
        kind="frames",
        rel=f"{prefix}{name}{sep}{ranges}{fileseq.getPaddingChars(padding)}{ext}",
        directory=directory,
        name=name,
        ext=ext[1:],
        files=files,
        frame_range=ranges,
        first=numbers[0],
        last=numbers[-1],
        padding=padding,
        missing=_gaps(numbers),
        pattern=f"{prefix}{name}{sep}%0{padding}d{ext}",
    )


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _ranges(numbers: list[int]) -> str:
    """Sorted distinct frames in fileseq's frame-range notation: ``1001-1050,1052-1100``."""
    parts: list[str] = []
    start = numbers[0]
    for before, after in itertools.pairwise(numbers):
        if after != before + 1:
            parts.append(_span(start, before))
            start = after
    parts.append(_span(start, numbers[-1]))
    return ",".join(parts)


def _gaps(numbers: list[int]) -> str:
    """The frames missing between the first and the last, in the same notation."""
    return ",".join(
        _span(before + 1, after - 1) for before, after in itertools.pairwise(numbers) if after > before + 1
    )
