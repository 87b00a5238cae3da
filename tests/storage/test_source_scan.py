"""Scanning a delivery: sequences, movies and files grouped; every bad input reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bifrost_core.storage.errors import SourceUnreadable
from bifrost_core.storage.scan import ScanItem, ScanResult, scan


def touch(root: Path, *rels: str, data: bytes = b"x") -> None:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def by_rel(result: ScanResult) -> dict[str, ScanItem]:
    return {item.rel: item for item in result.items}


def problems(result: ScanResult) -> dict[str, str]:
    return {p.rel: p.reason for p in result.problems}


def test_frames_are_grouped_with_range_padding_and_gaps(tmp_path: Path) -> None:
    frames = [*range(1001, 1051), *range(1053, 1101)]
    touch(tmp_path, *(f"sq010/sh010/plate.{f:04d}.exr" for f in frames))
    result = scan(tmp_path)
    assert [i.rel for i in result.items] == ["sq010/sh010/plate.1001-1050,1053-1100#.exr"]
    item = result.items[0]
    assert item.kind == "frames"
    assert (item.name, item.ext, item.directory) == ("plate", "exr", "sq010/sh010")
    assert (item.first, item.last, item.padding) == (1001, 1100, 4)
    assert item.frame_range == "1001-1050,1053-1100"
    assert item.missing == "1051-1052"
    assert item.pattern == "sq010/sh010/plate.%04d.exr"
    assert [f.frame for f in item.files] == frames
    assert [f.rel for f in item.files][:2] == ["sq010/sh010/plate.1001.exr", "sq010/sh010/plate.1002.exr"]
    assert item.files[0].path == str(tmp_path / "sq010/sh010/plate.1001.exr")
    assert item.frame_set is not None and len(item.frame_set) == len(frames)
    assert item.size == len(frames)
    assert result.problems == []


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["a_1.dpx", "a_2.dpx", "a_3.dpx"], ("a_1-3@.dpx", 1, "a_%01d.dpx")),
        (["a.00998.exr", "a.00999.exr", "a.01000.exr"], ("a.998-1000@@@@@.exr", 5, "a.%05d.exr")),
        (["sim.0001.bgeo.sc", "sim.0002.bgeo.sc"], ("sim.1-2#.bgeo.sc", 4, "sim.%04d.bgeo.sc")),
        (
            ["render.v002.0998.exr", "render.v002.1000.exr"],
            ("render.v002.998,1000#.exr", 4, "render.v002.%04d.exr"),
        ),
        (["frame.1.tif", "frame.10.tif", "frame.100.tif"], ("frame.1,10,100@.tif", 1, "frame.%01d.tif")),
    ],
)
def test_sequence_naming_and_padding(
    tmp_path: Path, names: list[str], expected: tuple[str, int, str]
) -> None:
    touch(tmp_path, *names)
    [item] = scan(tmp_path).items
    assert (item.rel, item.padding, item.pattern) == expected
    for f in item.files:
        assert Path(f.path).name == item.pattern % f.frame


def test_different_paddings_are_different_sequences(tmp_path: Path) -> None:
    touch(tmp_path, "p.0998.exr", "p.0999.exr", "p.1000.exr", "p.01000.exr", "p.01001.exr")
    assert sorted(by_rel(scan(tmp_path))) == ["p.1000-1001@@@@@.exr", "p.998-1000#.exr"]


def test_movies_and_single_files_are_items_of_their_own(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "edit/cut_v003.mov",
        "edit/ref_0001.mov",
        "edit/ref_0002.mov",
        "notes.txt",
        "README",
        "one.1001.exr",
    )
    items = by_rel(scan(tmp_path))
    assert {rel: i.kind for rel, i in items.items()} == {
        "README": "file",
        "edit/cut_v003.mov": "movie",
        "edit/ref_0001.mov": "movie",
        "edit/ref_0002.mov": "movie",
        "notes.txt": "file",
        "one.1001#.exr": "frames",
    }
    movie = items["edit/cut_v003.mov"]
    assert (movie.name, movie.ext, movie.frame_range, movie.files[0].frame) == ("cut_v003", "mov", None, None)
    assert (items["README"].name, items["README"].ext) == ("README", "")


def test_numbered_non_images_stay_files_unless_several(tmp_path: Path) -> None:
    touch(tmp_path, "notes_2.txt", "log_1.txt", "log_2.txt", "IMG_20240101123000.jpg")
    assert {rel: i.kind for rel, i in by_rel(scan(tmp_path)).items()} == {
        "notes_2.txt": "file",
        "log_1-2@.txt": "frames",
        "IMG_20240101123000.jpg": "file",  # a date, not a frame: more than 9 digits
    }


def test_spaces_non_ascii_and_zero_byte_files_are_ordinary(tmp_path: Path) -> None:
    touch(tmp_path, "prises de vue/élève ünï.1001.exr", "prises de vue/élève ünï.1002.exr")
    touch(tmp_path, "vide.txt", data=b"")
    result = scan(tmp_path)
    assert sorted(by_rel(result)) == ["prises de vue/élève ünï.1001-1002#.exr", "vide.txt"]
    assert by_rel(result)["vide.txt"].size == 0
    assert result.problems == []


def test_bad_inputs_are_reported_never_dropped(tmp_path: Path) -> None:
    src = tmp_path / "delivery"
    touch(src, "sq010/plate.1001.exr", "sq010/plate.1002.exr")
    outside = tmp_path / "elsewhere.exr"
    outside.write_bytes(b"x")
    os.symlink("..", src / "sq010" / "loop")  # back to the source folder
    os.symlink("self", src / "self")  # a link to itself
    os.symlink("../elsewhere.exr", src / "dotdot.exr")  # escapes with ..
    os.symlink(str(outside), src / "absolute.exr")  # escapes with an absolute path
    os.symlink("missing.exr", src / "broken.exr")
    os.symlink("sq010/plate.1001.exr", src / "alias.1001.exr")  # inside: fine
    os.mkfifo(src / "pipe")
    (src / "empty dir").mkdir()
    with open(os.path.join(os.fsencode(src), b"bad\xffname.exr"), "wb"):
        pass

    result = scan(src)
    assert problems(result) == {
        "absolute.exr": f"symlink points outside the source folder (-> {outside})",
        "bad\\xffname.exr": "name is not valid UTF-8",
        "broken.exr": "broken symlink (-> missing.exr)",
        "dotdot.exr": "symlink points outside the source folder (-> ../elsewhere.exr)",
        "pipe": "not a regular file (a FIFO)",
        "self": "symlink loop (-> self)",
        "sq010/loop": "symlink loop (back to the source folder)",
    }
    assert sorted(by_rel(result)) == ["alias.1001#.exr", "sq010/plate.1001-1002#.exr"]
    assert by_rel(result)["alias.1001#.exr"].files[0].path == str(src / "alias.1001.exr")


def test_symlinked_folders_inside_the_root_are_reported_not_walked_twice(tmp_path: Path) -> None:
    touch(tmp_path, "real/deep/a.exr")
    os.symlink("real", tmp_path / "link")
    os.symlink("..", tmp_path / "real" / "deep" / "up")
    result = scan(tmp_path)
    assert [i.rel for i in result.items] == ["real/deep/a.exr"]
    assert problems(result) == {
        "link": "symlink to a folder scanned as real",
        "real/deep/up": "symlink loop (back to real)",
    }


def test_unreadable_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Denied through the calls the scanner makes: root (CI) reads files whatever their mode.
    touch(tmp_path, "locked.exr", "shut/inside.exr", "ok.exr")
    real_access, real_scandir = os.access, os.scandir

    def access(path: str, mode: int) -> bool:
        return not path.endswith("locked.exr") and real_access(path, mode)

    def scandir(path: str):
        if path.endswith("shut"):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "scandir", scandir)
    result = scan(tmp_path)
    assert problems(result) == {
        "locked.exr": "cannot read: permission denied",
        "shut": "cannot list folder: Permission denied",
    }
    assert [i.rel for i in result.items] == ["ok.exr"]


def test_order_is_deterministic(tmp_path: Path) -> None:
    names = [f"d{i % 7}/f{i * 7919 % 1000}.dat" for i in range(300)]
    touch(tmp_path, *names)
    first = scan(tmp_path)
    assert [i.rel for i in first.items] == sorted(i.rel for i in first.items)
    assert [i.rel for i in scan(tmp_path).items] == [i.rel for i in first.items]


def test_a_single_file_root_and_a_missing_root(tmp_path: Path) -> None:
    touch(tmp_path, "clip.mov")
    result = scan(tmp_path / "clip.mov")
    assert result.root == str(tmp_path)
    assert [(i.kind, i.rel) for i in result.items] == [("movie", "clip.mov")]
    with pytest.raises(SourceUnreadable, match="nowhere: cannot scan"):
        scan(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(SourceUnreadable, match="pipe: cannot scan: not a readable file"):
        scan(tmp_path / "pipe")
