"""Published path templates, and materialising them as links to the blobs."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bifrost_core.errors import InvalidInput
from bifrost_core.storage import paths
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.storage.errors import BlobNotFound, PathTemplateError, StorageError
from bifrost_core.storage.paths import (
    PathTemplate,
    PublishFile,
    PublishTemplates,
    default_publish_root,
    materialise,
    resolve,
)

MakeFile = Callable[..., Path]

SHOT = "{project}/shots/{sequence}/{shot}/{task}/v{version:03d}/{name}.{frame:04d}.{ext}"
VERSION = {
    "project": "DEMO",
    "sequence": "sq010",
    "shot": "sh010",
    "task": "comp",
    "variant": "main",
    "version": 3,
}


def test_every_file_of_a_version_gets_a_human_path() -> None:
    files = [
        PublishFile("a" * 64, "sh010_comp", "exr", 1001),
        PublishFile("b" * 64, "sh010_comp", "exr", 1002),
        PublishFile("c" * 64, "sh010_review", "mov"),
    ]
    assert [p for p, _ in resolve(PathTemplate(SHOT), VERSION, files)] == [
        "DEMO/shots/sq010/sh010/comp/v003/sh010_comp.1001.exr",
        "DEMO/shots/sq010/sh010/comp/v003/sh010_comp.1002.exr",
        "DEMO/shots/sq010/sh010/comp/v003/sh010_review.mov",  # no frame: ".{frame}" dropped
    ]


@pytest.mark.parametrize(
    "template",
    [
        SHOT,
        "{project}/{shot}/{name}.{frame}.{ext}",  # bare: padded like its sequence
        "{project}/{shot}/{name}[_f{frame:06d}].{ext}",  # frame in an optional part
        "{project}/{shot}/{name}.{frame:x}.{ext}",  # hex: not a plain spec, rendered per file
        "{project}/{shot}/{name}_{frame:04d}.{frame:04d}.{ext}",  # twice: rendered per file
        "{project}/{shot}/{name}.{frame:+05d}.{ext}",
    ],
)
def test_a_sequence_renders_as_each_frame_would_alone(template: str) -> None:
    """resolve renders a sequence's path once and puts each frame in; the paths are those
    of formatting each file by itself, including names that hold the digits it splits on."""
    compiled = PathTemplate(template)
    files = [
        *(
            PublishFile(f"{i:064x}", "plate", "exr", frame, padding=4)
            for i, frame in enumerate((-2, 0, 999, 1001))
        ),
        PublishFile("f" * 64, f"p{paths._FRAME_MARK}", "exr", 1001, padding=4),
        PublishFile("e" * 64, "plate", "mov"),
    ]
    expected = [
        compiled.format({**VERSION, "name": f.name, "ext": f.ext, "frame": f.frame}, padding=f.padding)
        for f in files
    ]
    assert [path for path, _ in resolve(compiled, VERSION, files)] == expected
    assert len(set(expected)) == len(files)


def test_default_templates_for_shots_and_assets() -> None:
    templates = PublishTemplates.from_config(None)
    asset = {"project": "DEMO", "asset": "car", "task": "model", "variant": "hero", "version": 12}
    assert templates.for_entity("asset").format({**asset, "name": "car", "ext": "abc"}) == (
        "DEMO/assets/car/model/hero/v012/car.abc"
    )
    assert templates.for_entity("shot").format({**VERSION, "name": "p", "ext": "exr", "frame": 7}) == (
        "DEMO/shots/sq010/sh010/comp/main/v003/p.0007.exr"
    )


def test_optional_parts_and_sequence_padding() -> None:
    template = PathTemplate("{project}/[{episode}/]{shot}/{representation}/{name}_{frame}.{ext}")
    values = {"project": "P", "shot": "sh1", "representation": "proxy", "name": "n", "ext": "jpg", "frame": 7}
    assert template.format(values, padding=5) == "P/sh1/proxy/n_00007.jpg"
    assert template.format({**values, "episode": "ep02"}, padding=5) == "P/ep02/sh1/proxy/n_00007.jpg"
    assert template.fields == {"project", "episode", "shot", "representation", "name", "frame", "ext"}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{project}/{colour}/{name}", r"unknown field \{colour\}"),
        ("/mnt/{project}/{name}", "not a clean relative path"),
        ("{project}/../../etc/{name}", "not a clean relative path"),
        ("{project}//{name}", "not a clean relative path"),
        ("{project}/{name}/", "not a clean relative path"),
        ("{project}/{version:q}", r"bad format \{version:q\}"),
        ("{project!r}/{name}", "plain format spec"),
        ("{project.attr}/{name}", "unknown field"),
        ("{project}/[{episode}/[x]]", "unbalanced or nested"),
        ("{project}/[static]/{name}", "needs a field"),
        ("{project", "expected '}'"),
        ("", "non-empty"),
    ],
)
def test_bad_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(PathTemplateError, match=message):
        PathTemplate(template)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"shot": "../../etc"}, "cannot be part of a path"),
        ({"shot": "a/b"}, "cannot be part of a path"),
        ({"shot": ".."}, "cannot be part of a path"),
        ({"shot": ""}, "cannot be part of a path"),
        ({"version": "3"}, "must be an integer"),
        ({"shot": None}, r"no value for \{shot\}"),
    ],
)
def test_values_that_would_escape_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(PathTemplateError, match=message):
        PathTemplate(SHOT).format({**VERSION, "name": "n", "ext": "exr", "frame": 1, **values})


def test_two_files_on_one_path_are_refused() -> None:
    files = [PublishFile("a" * 64, "plate", "exr", 1), PublishFile("b" * 64, "plate", "exr", 1)]
    with pytest.raises(PathTemplateError, match="two files of the version resolve to"):
        resolve(PathTemplate(SHOT), VERSION, files)


def test_unknown_template_kind_in_config() -> None:
    with pytest.raises(PathTemplateError, match="unknown path template kind episode"):
        PublishTemplates.from_config({"episode": "{project}/{name}"})


# --------------------------------------------------------------------------- materialise


def _publish(store: BlobStore, make_file: MakeFile) -> list[tuple[str, str]]:
    frames = [store.put_file(make_file(f"in/plate.{f}.exr", f"frame {f}".encode())) for f in (1001, 1002)]
    files = [PublishFile(b.digest, "plate", "exr", f) for b, f in zip(frames, (1001, 1002), strict=True)]
    return [(rel, f.digest) for rel, f in resolve(PathTemplate(SHOT), VERSION, files)]


def test_local_tier_publishes_hard_links(local_store: BlobStore, make_file: MakeFile) -> None:
    wanted = _publish(local_store, make_file)
    published = materialise(local_store, wanted)
    root = Path(default_publish_root(local_store))
    for (rel, digest), pub in zip(wanted, published, strict=True):
        target = root / rel
        assert (pub.path, pub.digest, pub.url, pub.link) == (rel, digest, str(target), "hardlink")
        assert os.path.samefile(target, local_store.local_path(digest))  # type: ignore[arg-type]
        assert target.read_bytes().startswith(b"frame ")
    assert sorted(p.name for p in (root / "DEMO/shots/sq010/sh010/comp/v003").iterdir()) == [
        "plate.1001.exr",
        "plate.1002.exr",
    ]


def test_publishing_again_changes_nothing(
    local_store: BlobStore, make_file: MakeFile, tmp_path: Path
) -> None:
    wanted = _publish(local_store, make_file)
    first = materialise(local_store, wanted, root=tmp_path / "pub")
    inodes = [os.stat(p.url).st_ino for p in first]
    again = materialise(local_store, wanted, root=tmp_path / "pub")
    assert again == first
    assert [os.stat(p.url).st_ino for p in again] == inodes
    assert sorted(os.listdir(Path(first[0].url).parent)) == [
        "plate.1001.exr",
        "plate.1002.exr",
    ]  # no temp left


def test_a_stale_file_at_the_path_is_replaced_atomically(
    local_store: BlobStore, make_file: MakeFile, tmp_path: Path
) -> None:
    wanted = _publish(local_store, make_file)
    target = tmp_path / "pub" / wanted[0][0]
    target.parent.mkdir(parents=True)
    target.write_bytes(b"left over by a crashed run")
    materialise(local_store, wanted, root=tmp_path / "pub")
    assert target.read_bytes() == b"frame 1001"


def test_symlinks_where_hard_links_cannot_cross_devices(
    local_store: BlobStore, make_file: MakeFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = _publish(local_store, make_file)

    def cross_device(src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(paths.os, "link", cross_device)
    published = materialise(local_store, wanted, root=tmp_path / "other-disk")
    for pub in published:
        assert pub.link == "symlink"
        assert os.readlink(pub.url) == str(local_store.local_path(pub.digest))
        assert Path(pub.url).read_bytes().startswith(b"frame ")
    assert materialise(local_store, wanted, root=tmp_path / "other-disk") == published


def test_filesystem_errors_are_storage_errors_and_leave_no_temp(
    local_store: BlobStore, make_file: MakeFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = _publish(local_store, make_file)

    def broken(src: str, dst: str) -> None:
        raise OSError(errno.EIO, "Input/output error")

    # A new path is linked in place; an occupied one through a temporary link and a rename.
    with monkeypatch.context() as patch:
        patch.setattr(paths.os, "link", broken)
        with pytest.raises(
            StorageError, match=r"hot: publishing DEMO/.*plate\.1001\.exr: Input/output error"
        ):
            materialise(local_store, wanted, root=tmp_path / "pub")
    folder = tmp_path / "pub" / Path(wanted[0][0]).parent
    assert os.listdir(folder) == []
    occupied = folder / Path(wanted[0][0]).name
    occupied.write_bytes(b"something else")
    monkeypatch.setattr(paths.os, "replace", broken)
    with pytest.raises(StorageError, match=r"hot: publishing DEMO/.*plate\.1001\.exr: Input/output error"):
        materialise(local_store, wanted, root=tmp_path / "pub")
    assert os.listdir(folder) == [occupied.name]
    assert occupied.read_bytes() == b"something else"


def test_missing_blob_and_unsafe_paths(local_store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(BlobNotFound):
        materialise(local_store, [("DEMO/a.exr", "0" * 64)], root=tmp_path / "pub")
    for rel in ["../escape.exr", "/etc/passwd", "a//b", "a/./b"]:
        with pytest.raises(PathTemplateError, match="not a clean relative path"):
            materialise(local_store, [(rel, "0" * 64)], root=tmp_path / "pub")
    assert not (tmp_path / "pub").exists()


def test_object_tier_gives_blob_urls(s3_store: BlobStore, make_file: MakeFile) -> None:
    wanted = _publish(s3_store, make_file)
    published = materialise(s3_store, wanted)
    assert [(p.path, p.link) for p in published] == [(rel, "url") for rel, _ in wanted]
    assert [p.url for p in published] == [s3_store.url_for(d) for _, d in wanted]
    assert all(p.url.startswith("s3://") for p in published)
    with pytest.raises(InvalidInput, match="object store"):
        default_publish_root(s3_store)


def test_rendered_paths_are_bounded_also_for_long_frames() -> None:
    # A sequence's frames take a fast path (rendered once around the frame); a frame number
    # too long for it goes through the checked one.
    files = [PublishFile("a" * 64, "n" * 200, "exr", 1), PublishFile("b" * 64, "n" * 200, "exr", 10**60)]
    with pytest.raises(PathTemplateError, match="gives a name of 266 bytes"):
        resolve(PathTemplate(SHOT), VERSION, files)
    with pytest.raises(PathTemplateError, match="longer than a file name"):
        PathTemplate(SHOT).format({**VERSION, "name": "n" * 300, "ext": "exr", "frame": 1})
