"""Published paths: the human-readable place of every file of a version.

A project configures one path template for shots and one for assets, such as
``{project}/shots/{sequence}/{shot}/{task}/{variant}/v{version:03d}/{name}.{frame:04d}.{ext}``.
Fields: project, episode, sequence, shot, asset, task, variant, representation, name,
ext (strings) and version, frame (integers, with Python format specs). A part in
``[...]`` is left out when a field inside it has no value (``{project}/[{episode}/]…``);
a ``{frame}`` outside brackets is left out, with the one ``.``, ``_`` or ``-`` before it,
for a file that has no frame (a movie). A bare ``{frame}`` is padded like its sequence.

Templates are checked when built: unknown fields, bad format specs, widths or
precisions above MAX_FORMAT_WIDTH, and anything that could leave the publish root
(absolute paths, ``..``) raise PathTemplateError; so do values that would (a ``/`` or
``..`` in a shot code, say), and a rendered path with a name above MAX_SEGMENT_BYTES or
a whole above MAX_PATH_BYTES (what filesystems take), before it is built in full.

`materialise` makes the paths real on a local tier, as hard links to the blobs (symlinks
where a hard link cannot be made, e.g. across devices), each created under a temporary
name and renamed into place, so it is atomic and safe to rerun. On an object store there
is nothing to create: each path maps to the blob's URL.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import string
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bifrost_core.errors import InvalidInput
from bifrost_core.storage.blobstore import BlobStore, root_of
from bifrost_core.storage.durability import sync_filesystem
from bifrost_core.storage.errors import BlobNotFound, PathTemplateError, storage_error

STRING_FIELDS = frozenset(
    {"project", "episode", "sequence", "shot", "asset", "task", "variant", "representation", "name", "ext"}
)
INT_FIELDS = frozenset({"version", "frame"})
FIELDS = STRING_FIELDS | INT_FIELDS

DEFAULT_TEMPLATES = {
    "shot": "{project}/shots/{sequence}/{shot}/{task}/{variant}/v{version:03d}/{name}.{frame:04d}.{ext}",
    "asset": "{project}/assets/{asset}/{task}/{variant}/v{version:03d}/{name}.{frame:04d}.{ext}",
}

# Errors that mean "no hard link here", so a symlink is made instead.
_NO_HARD_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP})
_FRAME_SEPARATORS = "._-"
# The folder of a local tier that holds its published paths.
PUBLISH_FOLDER = "published"
# frame_slots renders this in place of the frame and splits the path around it.
_FRAME_MARK = 7_919_191_919_191_919
_FRAME_LIMIT = 10**15  # 15 digits and a sign: never longer than the mark
_PLAIN_INT_SPEC = re.compile(r"0?[0-9]*d?")
# A frame or version is padded to a handful of digits; a width of 999999999 would build a
# gigabyte string (and stall the server while it does).
MAX_FORMAT_WIDTH = 32
# What Linux filesystems take: a name of 255 bytes, a path of 4096.
MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 4096
# Python's format-spec mini-language, with the numbers captured to bound them.
_FORMAT_SPEC = re.compile(
    r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>[0-9]*)[_,]?(?:\.(?P<precision>[0-9]*))?[bcdeEfFgGnosxX%]?",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class _Part:
    literal: str
    field: str | None
    spec: str


@dataclass(frozen=True, slots=True)
class _Section:
    parts: tuple[_Part, ...]
    optional: bool


class PathTemplate:
    """A compiled published-path template; `format` renders one file's relative path."""

    def __init__(self, template: str) -> None:
        if not isinstance(template, str) or not template.strip():
            raise PathTemplateError("a path template must be a non-empty string")
        self.template = template
        self._sections = tuple(_parse(template))
        self.fields = frozenset(p.field for s in self._sections for p in s.parts if p.field)
        sample: dict[str, object] = {f: 1 if f in INT_FIELDS else "x" for f in FIELDS}
        self.format(sample)  # checks the format specs and that the result stays inside the root
        self.format({**sample, "frame": None})

    def __repr__(self) -> str:
        return f"PathTemplate({self.template!r})"

    def format(self, values: Mapping[str, object], *, padding: int | None = None) -> str:
        """The relative POSIX path for `values`; a bare ``{frame}`` is zero-padded to
        `padding`. Raises PathTemplateError for a missing or unsafe value."""
        out: list[str] = []
        for section in self._sections:
            rendered = self._render(section, values, padding)
            if rendered is not None:
                out.append(rendered)
        path = "".join(out)
        _check_size(self.template, path)
        if not _clean(path):
            raise PathTemplateError(
                f"path template {self.template!r} gives {path!r}, which is not a clean relative path"
            )
        return path

    def frame_slots(
        self, values: Mapping[str, object], *, padding: int | None = None
    ) -> tuple[str, str, str] | None:
        """For the files of a sequence, which differ only in their frame: the path before
        the frame, its format spec and the path after, so that a frame's path is
        ``head + format(frame, spec) + tail`` (the rest is rendered and checked once).
        None unless ``{frame}`` occurs once with a plain integer spec: then use `format`."""
        frames = [p for s in self._sections for p in s.parts if p.field == "frame"]
        if len(frames) != 1:
            return None
        spec = frames[0].spec or (f"0{padding}d" if padding else "")
        if not _PLAIN_INT_SPEC.fullmatch(spec):
            return None
        mark = format(_FRAME_MARK, spec)
        pieces = self.format({**values, "frame": _FRAME_MARK}, padding=padding).split(mark)
        if len(pieces) != 2:
            return None  # the mark's digits also occur in another value
        return pieces[0], spec, pieces[1]

    def _render(self, section: _Section, values: Mapping[str, object], padding: int | None) -> str | None:
        out: list[str] = []
        for part in section.parts:
            out.append(part.literal)
            if part.field is None:
                continue
            value = values.get(part.field)
            if value is None:
                if section.optional:
                    return None
                if part.field == "frame":
                    if out[-1] and out[-1][-1] in _FRAME_SEPARATORS:
                        out[-1] = out[-1][:-1]
                    continue
                raise PathTemplateError(f"path template {self.template!r}: no value for {{{part.field}}}")
            out.append(self._value(part, value, padding))
        return "".join(out)

    def _value(self, part: _Part, value: object, padding: int | None) -> str:
        name = part.field
        if name in INT_FIELDS:
            if not isinstance(value, int) or isinstance(value, bool):
                raise PathTemplateError(f"{{{name}}} must be an integer, got {value!r}")
            spec = part.spec or (f"0{padding}d" if name == "frame" and padding else "")
        else:
            if not isinstance(value, str):
                raise PathTemplateError(f"{{{name}}} must be a string, got {value!r}")
            spec = part.spec
            if not value or value in (".", "..") or any(c in value for c in "/\\\0"):
                raise PathTemplateError(f"{{{name}}} value {value!r} cannot be part of a path")
            if len(value) > MAX_SEGMENT_BYTES:
                raise PathTemplateError(f"{{{name}}} value {value[:40]!r}... is longer than a file name")
        try:
            return format(value, spec)
        except (ValueError, TypeError) as exc:
            raise PathTemplateError(
                f"path template {self.template!r}: bad format {{{name}:{spec}}}: {exc}"
            ) from exc


def _parse(template: str) -> list[_Section]:
    """Split a template into required and optional (bracketed) sections of parts."""
    where = f"path template {template!r}"
    sections: list[_Section] = []
    for piece in re.split(r"(\[[^\[\]]*\])", template):
        if not piece:
            continue
        optional = piece.startswith("[")
        text = piece[1:-1] if optional else piece
        if "[" in text or "]" in text:
            raise PathTemplateError(f"{where}: unbalanced or nested [ ]")
        parts: list[_Part] = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise PathTemplateError(f"{where}: {exc}") from exc
        for literal, field, spec, conversion in parsed:
            if field is not None and field not in FIELDS:
                raise PathTemplateError(
                    f"{where}: unknown field {{{field}}}; known: {', '.join(sorted(FIELDS))}"
                )
            if conversion is not None or (spec and "{" in spec):
                raise PathTemplateError(f"{where}: field {{{field}}} may only have a plain format spec")
            if spec:
                _check_spec(where, field, spec)
            parts.append(_Part(literal, field, spec or ""))
        if optional and not any(p.field for p in parts):
            raise PathTemplateError(f"{where}: an optional [ ] part needs a field")
        sections.append(_Section(tuple(parts), optional))
    return sections


def _check_spec(where: str, field: str | None, spec: str) -> None:
    found = _FORMAT_SPEC.fullmatch(spec)
    if found is None or any(c in spec for c in "/\\\0"):  # a fill character too
        raise PathTemplateError(f"{where}: bad format {{{field}:{spec}}}")
    for name in ("width", "precision"):
        # int() of a long digit string is itself slow: compare lengths first.
        digits = (found.group(name) or "").lstrip("0") or "0"
        if len(digits) > 3 or int(digits) > MAX_FORMAT_WIDTH:
            raise PathTemplateError(f"{where}: the {name} of {{{field}:{spec}}} is above {MAX_FORMAT_WIDTH}")


def _check_size(template: str, path: str) -> None:
    """PathTemplateError unless `path` fits a filesystem (names and the whole, in bytes)."""
    size = len(path.encode())
    if size > MAX_PATH_BYTES:
        raise PathTemplateError(
            f"path template {template[:60]!r}... gives a path of {size} bytes; the limit is {MAX_PATH_BYTES}"
        )
    longest = max(path.split("/"), key=lambda name: len(name.encode()))
    if len(longest.encode()) > MAX_SEGMENT_BYTES:
        raise PathTemplateError(
            f"path template {template[:60]!r}... gives a name of {len(longest.encode())} bytes "
            f"({longest[:40]!r}...); the limit is {MAX_SEGMENT_BYTES}"
        )


@dataclass(frozen=True)
class PublishTemplates:
    """A project's path templates, one for shots and one for assets."""

    shot: PathTemplate
    asset: PathTemplate

    @classmethod
    def from_config(cls, config: Mapping[str, str] | None = None) -> PublishTemplates:
        """From a project's configuration (keys ``shot`` and ``asset``); missing keys take
        DEFAULT_TEMPLATES."""
        config = dict(config or {})
        unknown = set(config) - set(DEFAULT_TEMPLATES)
        if unknown:
            raise PathTemplateError(
                f"unknown path template kind {', '.join(sorted(unknown))}; use shot, asset"
            )
        merged = {**DEFAULT_TEMPLATES, **config}
        return cls(shot=PathTemplate(merged["shot"]), asset=PathTemplate(merged["asset"]))

    def for_entity(self, entity: Literal["shot", "asset"]) -> PathTemplate:
        return self.shot if entity == "shot" else self.asset


@dataclass(frozen=True, slots=True)
class PublishFile:
    """One file of a version to place: its blob, name, extension and frame (if any);
    `padding` pads a bare ``{frame}``; `representation` fills ``{representation}``."""

    digest: str
    name: str
    ext: str
    frame: int | None = None
    padding: int | None = None
    representation: str | None = None


def resolve(
    template: PathTemplate, version: Mapping[str, object], files: Iterable[PublishFile]
) -> list[tuple[str, PublishFile]]:
    """The relative published path of every file of a version, in order.

    `version` holds the version's fields (project, sequence, shot or asset, task, variant,
    version…). Raises PathTemplateError if two files would share a path.
    """
    out: list[tuple[str, PublishFile]] = []
    taken: dict[str, PublishFile] = {}
    slots: dict[tuple[str, str, str | None, int | None], tuple[str, str, str] | None] = {}
    for f in files:
        values = {
            **version,
            "name": f.name,
            "ext": f.ext,
            "frame": f.frame,
            "representation": f.representation,
        }
        found = None
        # The slots were rendered (and checked) with the 19-digit mark: no frame may be longer.
        if type(f.frame) is int and -_FRAME_LIMIT < f.frame < _FRAME_LIMIT:
            sequence = (f.name, f.ext, f.representation, f.padding)
            if sequence not in slots:
                slots[sequence] = template.frame_slots(values, padding=f.padding)
            found = slots[sequence]
        if found is not None:
            head, spec, tail = found
            path = f"{head}{format(f.frame, spec)}{tail}"
        else:
            path = template.format(values, padding=f.padding)
        other = taken.setdefault(path, f)
        if other is not f and other.digest != f.digest:
            raise PathTemplateError(f"two files of the version resolve to {path}: change the path template")
        out.append((path, f))
    return out


@dataclass(frozen=True, slots=True)
class PublishedFile:
    """A published path: `path` relative to the publish root, `url` where to read it (the
    link's absolute path on a local tier, the blob's URL on an object store), and `link`:
    "hardlink", "symlink" or "url"."""

    path: str
    digest: str
    url: str
    link: Literal["hardlink", "symlink", "url"]


def default_publish_root(store: BlobStore) -> str:
    """Where published paths go unless configured: ``<tier root>/published`` (hard links
    need the blobs' filesystem)."""
    if store.local_root is None:
        raise InvalidInput(f"storage tier {store.name} is an object store: it has no publish folder")
    return os.path.join(store.local_root, PUBLISH_FOLDER)


def published_location(blob_url: str, digest: str, published_path: str | None) -> str:
    """Where to read a published file in a tier, given its blob's URL there: the link under
    the tier's publish root on a local tier (blob URLs are absolute paths there), the blob
    itself on an object store."""
    if published_path and blob_url.startswith("/"):
        return f"{root_of(blob_url, digest)}/{PUBLISH_FOLDER}/{published_path}"
    return blob_url


def materialise(
    store: BlobStore,
    files: Sequence[tuple[str, str]],
    *,
    root: str | os.PathLike[str] | None = None,
    sync: bool = True,
) -> list[PublishedFile]:
    """Make `files` (relative path, blob digest) visible under `root` (default
    `default_publish_root`) on a local tier; on an object store just map them to URLs.

    Atomic and idempotent: a path already linked to its blob is left alone; any other file
    there is replaced by an atomic rename, never left half-made. The links are synced to
    disk before returning, unless `sync` is False (a caller linking many versions syncs
    once, with `sync_filesystem`, after the last). Raises BlobNotFound if a blob is
    missing, PathTemplateError for an unsafe path and StorageError if the filesystem fails.
    """
    for rel, _ in files:
        _check_relative(rel)
    if not store.is_local:
        return [PublishedFile(rel, digest, store.url_for(digest), "url") for rel, digest in files]
    base = os.path.abspath(root) if root is not None else default_publish_root(store)
    made: set[str] = set()
    out = [_link(store, base, rel, digest, made) for rel, digest in files]
    if files and sync:
        try:
            sync_filesystem(base)
        except OSError as exc:
            raise storage_error(store.name, f"syncing published paths under {base}", exc) from exc
    return out


def relink(store: BlobStore, files: Sequence[tuple[str, str]]) -> None:
    """After a blob's file was replaced (a repair), point its published paths (relative path,
    digest) under `default_publish_root` at it again: a hard link keeps the file it was made
    to. Each path there is replaced atomically; a path that does not exist is not created."""
    if not store.is_local or not files:
        return
    base = default_publish_root(store)
    for rel, digest in files:
        _check_relative(rel)
        target = f"{base}/{rel}"
        if os.path.lexists(target):
            _relink(store, store.url_for(digest), target, rel, digest)
    try:
        sync_filesystem(base)
    except OSError as exc:
        raise storage_error(store.name, f"syncing published paths under {base}", exc) from exc


def _check_relative(rel: str) -> None:
    if not _clean(rel) or "\\" in rel or "\0" in rel:
        raise PathTemplateError(f"published path {rel!r} is not a clean relative path")


def _clean(path: str) -> bool:
    """A relative POSIX path with no empty, ``.`` or ``..`` segment (string tests, not a
    split: this runs for every file of every version)."""
    wrapped = f"/{path}/"
    return bool(path) and "//" not in wrapped and "/./" not in wrapped and "/../" not in wrapped


def _link(store: BlobStore, base: str, rel: str, digest: str, made: set[str]) -> PublishedFile:
    blob = store.url_for(digest)
    target = f"{base}/{rel}"
    folder = os.path.dirname(target)
    try:
        if folder not in made:
            if not os.path.exists(blob):  # before making folders for it
                raise BlobNotFound(digest, store.name)
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        # The usual case, a new path: one link(2), which creates the whole entry or nothing.
        os.link(blob, target)
        return PublishedFile(rel, digest, target, "hardlink")
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINK and exc.errno != errno.ENOENT:
            raise storage_error(store.name, f"publishing {rel}", exc) from exc
    return _relink(store, blob, target, rel, digest)


def _relink(store: BlobStore, blob: str, target: str, rel: str, digest: str) -> PublishedFile:
    """Publish where a plain hard link failed: a path already there (kept if it is this
    blob's link, else replaced atomically), a missing blob, or a filesystem refusing hard links."""
    try:
        blob_stat = os.stat(blob)
    except FileNotFoundError:
        raise BlobNotFound(digest, store.name) from None
    try:
        target_stat: os.stat_result | None = os.lstat(target)
    except FileNotFoundError:
        target_stat = None
    if target_stat is not None:
        current = _existing_link(target, target_stat, blob, blob_stat)
        if current is not None:
            return PublishedFile(rel, digest, target, current)
    folder = os.path.dirname(target)
    tmp = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        os.makedirs(folder, exist_ok=True)
        kind = _new_link(blob, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise storage_error(store.name, f"publishing {rel}", exc) from exc
    return PublishedFile(rel, digest, target, kind)


def _new_link(blob: str, path: str) -> Literal["hardlink", "symlink"]:
    """Link `path` to the blob: a hard link, or a symlink where the filesystem refuses one."""
    try:
        os.link(blob, path)
        return "hardlink"
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINK:
            raise
    os.symlink(blob, path)
    return "symlink"


def _existing_link(
    target: str, st: os.stat_result, blob: str, blob_stat: os.stat_result
) -> Literal["hardlink", "symlink"] | None:
    """How `target` (whose lstat is `st`) already points at the blob, or None if it does not."""
    if stat.S_ISLNK(st.st_mode):
        return "symlink" if os.readlink(target) == blob else None
    if (st.st_dev, st.st_ino) == (blob_stat.st_dev, blob_stat.st_ino):
        return "hardlink"
    return None
