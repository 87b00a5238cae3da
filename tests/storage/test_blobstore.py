"""The blob store on a local tier and on S3 (moto's server): the behaviour both must share,
then what only a local tier does (batch sync, atomic placement, full disk)."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest

from bifrost_core.errors import BifrostError
from bifrost_core.storage.blobstore import BlobStore, Swept, blob_key, local, objects, s3, temp_file
from bifrost_core.storage.blobstore.source import Source
from bifrost_core.storage.errors import (
    BlobNotFound,
    InvalidDigest,
    PutFailed,
    SourceChanged,
    SourceUnreadable,
    StorageError,
    StorageFull,
)

MakeFile = Callable[..., Path]


def digest_of(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> int:
    """Lower the small-file limit so the streaming paths run on small test files."""
    for backend in (local, s3):
        monkeypatch.setattr(backend, "SMALL_FILE", 64 * 1024)
    for backend in (local, objects, s3):
        monkeypatch.setattr(backend, "CHUNK", 32 * 1024)
    return 64 * 1024


def mutate_while_read(monkeypatch: pytest.MonkeyPatch, path: Path, times: int) -> list[int]:
    """Append to `path` right after the store reads it, the first `times` reads; returns a
    counter of the reads seen."""
    seen = [0]
    real_read_all = Source.read_all
    real_readinto = Source.readinto

    def touch(src: Source) -> None:
        if src.path == str(path):
            seen[0] += 1
            if seen[0] <= times:
                with open(path, "ab") as f:
                    f.write(b"more")

    def read_all(self: Source) -> bytes:
        data = real_read_all(self)
        touch(self)
        return data

    def readinto(self: Source, buf: memoryview) -> int:
        n = real_readinto(self, buf)
        if n:
            touch(self)
        return n

    monkeypatch.setattr(Source, "read_all", read_all)
    monkeypatch.setattr(Source, "readinto", readinto)
    return seen


# --------------------------------------------------------------------------- both tiers


def test_roundtrip(store: BlobStore, make_file: MakeFile, small_threshold: int) -> None:
    contents = {
        "plate.1001.exr": os.urandom(1000),
        "empty.txt": b"",
        "big.mov": os.urandom(3 * small_threshold + 17),
    }
    paths = [make_file(name, data) for name, data in contents.items()]

    stored = store.put_files(paths)

    assert [s.source for s in stored] == [str(p) for p in paths]
    for blob, data in zip(stored, contents.values(), strict=True):
        assert blob.digest == digest_of(data)
        assert blob.size == len(data)
        assert blob.new
        assert blob.url == store.url_for(blob.digest)
        assert blob.url.endswith(blob_key(blob.digest))
        assert store.exists(blob.digest)
        with store.open(blob.digest) as f:
            assert f.read() == data
        assert store.rehash(blob.digest) == blob.digest
    listed = {info.digest: info.size for info in store.iter_blobs()}
    assert listed == {digest_of(d): len(d) for d in contents.values()}
    assert store.usage() == sum(len(d) for d in contents.values())
    assert all(info.mtime > time.time() - 3600 for info in store.iter_blobs())


def test_zero_byte_file_is_a_blob(store: BlobStore, make_file: MakeFile) -> None:
    blob = store.put_file(make_file("empty", b""))
    assert (blob.size, blob.digest) == (0, digest_of(b""))
    with store.open(blob.digest) as f:
        assert f.read() == b""
    assert store.rehash(blob.digest) == blob.digest


def test_identical_content_is_stored_once(
    store: BlobStore, make_file: MakeFile, small_threshold: int
) -> None:
    small, large = os.urandom(100), os.urandom(2 * small_threshold)
    first = store.put_files(
        [make_file("a/one.exr", small), make_file("b/two.exr", small), make_file("c/big", large)],
        workers=1,
    )
    assert [b.new for b in first] == [True, False, True]
    assert first[0].digest == first[1].digest

    again = store.put_files([make_file("d/three.exr", small), make_file("e/big", large)])
    assert [b.new for b in again] == [False, False]
    assert sorted(i.digest for i in store.iter_blobs()) == sorted({digest_of(small), digest_of(large)})


def test_a_batch_in_parallel(store: BlobStore, make_file: MakeFile) -> None:
    datas = [os.urandom(n) for n in range(0, 3000, 37)]
    stored = store.put_files([make_file(f"f{i:03d}.bin", d) for i, d in enumerate(datas)], workers=4)
    assert [b.digest for b in stored] == [digest_of(d) for d in datas]
    assert {i.digest for i in store.iter_blobs()} == {digest_of(d) for d in datas}


def test_each_source_byte_is_read_once(
    store: BlobStore, make_file: MakeFile, small_threshold: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_file("big.mov", 5 * small_threshold + 3)
    read = [0]
    real = Source.readinto

    def counting(self: Source, buf: memoryview) -> int:
        n = real(self, buf)
        read[0] += n
        return n

    monkeypatch.setattr(Source, "readinto", counting)
    store.put_file(path)
    assert read[0] == path.stat().st_size


def test_unreadable_file_is_reported_and_the_rest_stored(
    store: BlobStore, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = make_file("good.exr", b"good")
    bad = make_file("secret plate.exr", b"secret")
    real_open = os.open

    def deny(path: object, flags: int, *args: int) -> int:
        if os.fspath(path) == str(bad):  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, "Permission denied", str(bad))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", deny)
    done: list[int] = []
    with pytest.raises(PutFailed) as caught:
        store.put_files([good, bad], on_done=done.append)
    assert sorted(done) == [0, 1]  # each source reported once, the failed one too
    failure = caught.value.failures[0]
    assert isinstance(failure, SourceUnreadable)
    assert failure.path == str(bad)
    assert str(bad) in str(caught.value) and "Permission denied" in str(caught.value)
    assert caught.value.status_code == 422
    assert [b.source for b in caught.value.stored] == [str(good)]
    assert store.exists(digest_of(b"good"))

    with pytest.raises(SourceUnreadable, match=r"secret plate\.exr: cannot open: Permission denied"):
        store.put_file(bad)


def test_missing_directory_and_fifo_sources(store: BlobStore, make_file: MakeFile, tmp_path: Path) -> None:
    fifo = tmp_path / "src" / "pipe"
    make_file("keep", b"")
    os.mkfifo(fifo)
    with pytest.raises(SourceUnreadable, match="not a regular file"):
        store.put_file(fifo)  # must not hang waiting for a writer
    with pytest.raises(SourceUnreadable, match="a directory"):
        store.put_file(tmp_path / "src")
    with pytest.raises(SourceUnreadable, match="No such file"):
        store.put_file(tmp_path / "src" / "gone.exr")


@pytest.mark.parametrize("size", ["small", "large"])
def test_file_changing_once_is_read_again(
    store: BlobStore,
    make_file: MakeFile,
    small_threshold: int,
    monkeypatch: pytest.MonkeyPatch,
    size: str,
) -> None:
    path = make_file("growing.exr", 100 if size == "small" else 3 * small_threshold)
    mutate_while_read(monkeypatch, path, times=1)
    blob = store.put_file(path)
    final = path.read_bytes()
    assert blob.digest == digest_of(final) and blob.size == len(final)
    assert store.rehash(blob.digest) == blob.digest
    assert len(list(store.iter_blobs())) == 1


@pytest.mark.parametrize("size", ["small", "large"])
def test_file_that_keeps_changing_is_refused(
    store: BlobStore,
    make_file: MakeFile,
    small_threshold: int,
    monkeypatch: pytest.MonkeyPatch,
    size: str,
) -> None:
    path = make_file("render.0001.exr", 100 if size == "small" else 3 * small_threshold)
    mutate_while_read(monkeypatch, path, times=10)
    with pytest.raises(SourceChanged, match=r"render\.0001\.exr: changed while being read"):
        store.put_file(path)
    assert list(store.iter_blobs()) == []
    assert store.purge_temp(older_than=0).removed == 0  # nothing left behind


def test_corrupt_and_missing_blobs_are_found_by_rehash(store: BlobStore, make_file: MakeFile) -> None:
    a, b = store.put_files([make_file("a", b"frame a"), make_file("b", b"frame b")])
    overwrite_blob(store, a.digest, b"frame X")
    assert store.delete(b.digest)
    assert not store.delete(b.digest)

    assert store.rehash(a.digest) == digest_of(b"frame X") != a.digest
    assert store.rehash(b.digest) is None
    assert not store.exists(b.digest)
    with pytest.raises(BlobNotFound, match=b.digest):
        store.open(b.digest)


def test_a_damaged_blob_is_rewritten_by_the_next_put(store: BlobStore, make_file: MakeFile) -> None:
    path = make_file("a", b"the real frame")
    blob = store.put_file(path)
    overwrite_blob(store, blob.digest, b"trunc")
    again = store.put_file(path)
    assert again.new
    assert store.rehash(blob.digest) == blob.digest


@pytest.mark.parametrize("size", ["small", "large"])
def test_a_blob_of_the_right_size_with_flipped_bytes_is_repaired_not_reused(
    store: BlobStore, make_file: MakeFile, small_threshold: int, size: str
) -> None:
    """Issue #10, defect 2: a reuse used to trust the size alone."""
    data = os.urandom(1000 if size == "small" else 3 * small_threshold + 5)
    blob = store.put_file(make_file("a", data))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    overwrite_blob(store, blob.digest, bytes(flipped))

    again = store.put_file(make_file("b", data))
    assert (again.new, again.repaired) == (True, True)
    assert store.rehash(blob.digest) == blob.digest
    with store.open(blob.digest) as f:
        assert f.read() == data
    # A sound blob is still reused, not written again.
    third = store.put_file(make_file("c", data))
    assert (third.new, third.repaired) == (False, False)


def test_digests_are_checked(store: BlobStore) -> None:
    for bad in ["../../etc/passwd", "ABC", "a" * 63, "g" * 64]:
        with pytest.raises(InvalidDigest):
            store.exists(bad)
        with pytest.raises(InvalidDigest):
            store.open(bad)


def overwrite_blob(store: BlobStore, digest: str, data: bytes) -> None:
    """Damage a stored blob behind the store's back."""
    path = store.local_path(digest)
    if path is not None:
        path.chmod(0o644)
        path.write_bytes(data)
        return
    tier = store._tier
    tier.fs.pipe_file(f"{tier.bucket}/{tier.key(digest)}", data)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- local tier


def test_local_blobs_are_read_only_files_at_their_content_path(
    local_store: BlobStore, make_file: MakeFile
) -> None:
    blob = local_store.put_file(make_file("a.exr", b"pixels"))
    path = local_store.local_path(blob.digest)
    assert path is not None and str(path) == blob.url
    assert path == Path(local_store.root) / "blobs" / blob.digest[:2] / blob.digest
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert os.listdir(Path(local_store.root) / "tmp") == []
    assert local_store.is_local


def test_one_sync_before_placing_and_one_after(
    local_store: BlobStore, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_sync, real_replace = local.sync_filesystem, os.replace

    def sync(path: str) -> None:
        events.append("sync")
        real_sync(path)

    def replace(src: str, dst: str) -> None:
        real_replace(src, dst)
        events.append("place")

    monkeypatch.setattr(local, "sync_filesystem", sync)
    monkeypatch.setattr(os, "replace", replace)
    local_store.put_files([make_file(f"f{i}", os.urandom(10)) for i in range(50)], workers=4)
    assert events == ["sync"] + ["place"] * 50 + ["sync"]


def _tier_files(store: BlobStore) -> tuple[list[str], list[str]]:
    root = Path(store.root)
    tmp = sorted(os.listdir(root / "tmp")) if (root / "tmp").exists() else []
    blobs = (
        sorted(p.name for p in (root / "blobs").rglob("*") if p.is_file())
        if (root / "blobs").exists()
        else []
    )
    return tmp, blobs


@pytest.mark.parametrize("size", ["small", "large"])
def test_full_disk_is_a_clear_error_and_leaves_nothing(
    local_store: BlobStore,
    make_file: MakeFile,
    small_threshold: int,
    monkeypatch: pytest.MonkeyPatch,
    size: str,
) -> None:
    n = 100 if size == "small" else 3 * small_threshold
    paths = [make_file(f"frame.{i:04d}.exr", n) for i in range(6)]
    real_write = os.write
    writes = [0]

    def write(fd: int, data: bytes) -> int:
        # A temporary file: in tmp/ (large files) or in the blob's folder (small ones).
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".tmp-"):
            writes[0] += 1
            if writes[0] >= 3:
                real_write(fd, bytes(data)[: len(data) // 2])  # a partial write, then the disk is full
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(StorageFull, match=r"storage tier hot is full: storing .*frame\.\d{4}\.exr") as caught:
        local_store.put_files(paths, workers=2)
    assert caught.value.status_code == 503
    assert _tier_files(local_store) == ([], [])


def test_failed_sync_places_nothing(
    local_store: BlobStore, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    def sync(path: str) -> None:
        raise OSError(errno.EIO, "Input/output error", path)

    monkeypatch.setattr(local, "sync_filesystem", sync)
    with pytest.raises(StorageError, match="hot: syncing new blobs: Input/output error"):
        local_store.put_files([make_file(f"f{i}", os.urandom(10)) for i in range(5)])
    assert _tier_files(local_store) == ([], [])


def test_failure_while_placing_leaves_only_complete_blobs(
    local_store: BlobStore, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    datas = [os.urandom(1000) for _ in range(5)]
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        if dst.endswith(digest_of(datas[2])):
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(StorageError, match="placing blob"):
        local_store.put_files([make_file(f"f{i}", d) for i, d in enumerate(datas)], workers=1)
    tmp, blobs = _tier_files(local_store)
    assert tmp == []
    assert blobs == sorted(digest_of(d) for d in datas[:2])
    assert all(local_store.rehash(d) == d for d in blobs)


def _spy_temp_opens(monkeypatch: pytest.MonkeyPatch, refuse_direct: bool = False) -> list[int]:
    """Record the flags each temporary blob file is opened with; with `refuse_direct`, act
    as a filesystem without O_DIRECT (EINVAL, after creating the file as some kernels do)."""
    flags_seen: list[int] = []
    real_open = os.open

    def spy(path: str, flags: int, mode: int = 0o777, **kwargs: object) -> int:
        if os.path.basename(path).startswith(".tmp-"):
            flags_seen.append(flags)
            if refuse_direct and flags & os.O_DIRECT:
                os.close(real_open(path, flags & ~os.O_DIRECT, mode))
                raise OSError(errno.EINVAL, "Invalid argument", path)
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return flags_seen


@pytest.mark.parametrize(
    "size",
    [
        local.DIRECT_FROM - 1,
        local.DIRECT_FROM,
        local.DIRECT_FROM + 1,
        local.SMALL_FILE,
        local.SMALL_FILE + 1,
        2 * local.CHUNK,
        2 * local.CHUNK + 4097,
    ],
)
def test_large_blobs_go_past_the_page_cache_and_arrive_whole(
    local_store: BlobStore, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    flags_seen = _spy_temp_opens(monkeypatch)
    data = os.urandom(size)
    blob = local_store.put_file(make_file("plate.mov", data))
    assert blob.digest == digest_of(data)
    with local_store.open(blob.digest) as f:
        assert f.read() == data
    assert [bool(flags & os.O_DIRECT) for flags in flags_seen] == [size >= local.DIRECT_FROM]


def test_a_filesystem_without_o_direct_gets_page_cache_writes(
    local_store: BlobStore, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags_seen = _spy_temp_opens(monkeypatch, refuse_direct=True)
    written_back: list[int] = []
    real_writeback = temp_file.start_writeback

    def writeback(fd: int, offset: int, length: int) -> None:
        written_back.append(length)
        real_writeback(fd, offset, length)

    monkeypatch.setattr(temp_file, "start_writeback", writeback)
    datas = [os.urandom(local.SMALL_FILE + 4097), os.urandom(local.DIRECT_FROM)]
    stored = local_store.put_files([make_file(f"f{i}", d) for i, d in enumerate(datas)], workers=1)
    assert [blob.digest for blob in stored] == [digest_of(d) for d in datas]
    assert all(local_store.rehash(blob.digest) == blob.digest for blob in stored)
    # Refused once, then not asked again; the refused open's file is gone.
    assert [bool(flags & os.O_DIRECT) for flags in flags_seen] == [True, False, False]
    assert _tier_files(local_store)[0] == []
    # Page-cache writes of large files start their write-back as they go.
    assert sum(written_back) == sum(len(d) for d in datas)


def test_a_device_refusing_the_alignment_gets_page_cache_writes(
    local_store: BlobStore, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags_seen = _spy_temp_opens(monkeypatch)
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    datas = [os.urandom(2 * local.CHUNK + 100), os.urandom(local.DIRECT_FROM)]
    stored = local_store.put_files([make_file(f"f{i}", d) for i, d in enumerate(datas)], workers=1)
    for blob, data in zip(stored, datas, strict=True):
        with local_store.open(blob.digest) as f:
            assert f.read() == data
    assert [bool(flags & os.O_DIRECT) for flags in flags_seen] == [True, False]


def test_file_url_root_is_a_local_tier(tmp_path: Path, make_file: MakeFile) -> None:
    store = BlobStore(f"file://{tmp_path}/tier")
    assert store.is_local and store.local_root == tmp_path / "tier"
    blob = store.put_file(make_file("a", b"a"))
    assert blob.url == str(tmp_path / "tier" / blob_key(blob.digest))


def test_put_file_raises_the_specific_error(local_store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(SourceUnreadable) as caught:
        local_store.put_file(tmp_path / "nope")
    assert isinstance(caught.value, BifrostError)


def test_purge_temp_removes_only_stale_leftovers(local_store: BlobStore, make_file: MakeFile) -> None:
    blob = local_store.put_file(make_file("a", b"a"))  # creates the tier
    tmp = Path(local_store.root) / "tmp"
    folder = Path(local_store.root) / "blobs" / blob.digest[:2]  # where small files are written
    stale, fresh = tmp / ".tmp-123-0123456789ab-1", tmp / ".tmp-123-0123456789ab-2"
    stale_small, fresh_small = folder / ".tmp-123-0123456789ab-3", folder / ".tmp-123-0123456789ab-4"
    for path in (stale, fresh, stale_small, fresh_small):
        path.write_bytes(b"half a blob")
    old = time.time() - 7200
    for path in (stale, stale_small):
        os.utime(path, (old, old))
    assert local_store.purge_temp(older_than=3600) == Swept(removed=2)
    assert sorted(os.listdir(tmp)) == [fresh.name]
    assert sorted(os.listdir(folder)) == sorted([fresh_small.name, blob.digest])
    assert [info.digest for info in local_store.iter_blobs()] == [blob.digest]


def tree(root: Path) -> dict[str, object]:
    """Every entry under `root`: a symlink's target, a file's bytes, or "dir"."""
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("symlink", os.readlink(path))
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = path.read_bytes()
    return out


def test_gc_calls_touch_nothing_the_store_did_not_write(
    tmp_path: Path, make_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #10, defect 5: a tier root that is a scratch folder full of other things."""
    root = tmp_path / "scratch"
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "keep.txt").write_bytes(b"not yours")
    for rel, data in {
        "notes.txt": b"notes",
        "tmp/report.pdf": b"pdf",
        "tmp/sub/deep.txt": b"deep",
        "tmp/.tmp-looks-like-ours": b"almost",
        f"tmp/{'c' * 32}": b"an object tier's name, not a local one's",
        "blobs/readme": b"readme",
        "blobs/zz/" + "a" * 64: b"a digest name in a folder that is not its own",
        "blobs/ab/" + "cd" * 32: b"a digest in the wrong folder",
        "blobs/ab/other.bin": b"other",
        "blobs/ab/sub/x": b"x",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "tmp" / "link-to-file").symlink_to(outside / "keep.txt")
    (root / "tmp" / ".tmp-1-0123456789ab-1").symlink_to(outside / "keep.txt")  # our name, a symlink
    (root / "tmp" / "link-to-dir").symlink_to(outside / "folder")
    (root / "blobs" / "ef").symlink_to(outside)
    (root / "blobs" / "ab" / ("ab" * 32)).symlink_to(outside / "keep.txt")  # a digest name, a symlink
    (root / "blobs" / "ab" / ".tmp-2-0123456789ab-2").mkdir()  # our name, a folder
    store = BlobStore(root)
    blob = store.put_file(make_file("frame", b"a real blob"))
    leftover = Path(store.root) / "tmp" / ".tmp-9-0123456789ab-9"
    leftover.write_bytes(b"a crashed put's temporary file")
    before = tree(root)
    outside_before = tree(outside)

    swept = store.purge_temp(older_than=-60)
    assert swept.removed == 1 and not leftover.exists()
    assert [info.digest for info in store.iter_blobs()] == [blob.digest]
    assert not store.delete("ab" * 32)  # a symlink where a blob would be is not removed
    assert store.delete(blob.digest, if_older_than=time.time() - 3600) is False  # too young

    del before["tmp/.tmp-9-0123456789ab-9"]
    assert tree(root) == before
    assert tree(outside) == outside_before
    skipped = "\n".join(swept.skipped)
    for rel in ("tmp/report.pdf", "tmp/sub", "tmp/link-to-dir", "tmp/.tmp-1-0123456789ab-1", "blobs/readme"):
        assert f"{root}/{rel}: " in skipped, rel
    assert f"{root}/blobs/ab/.tmp-2-0123456789ab-2: " in skipped

    # A file it cannot remove is listed, not fatal.
    leftover.write_bytes(b"another")
    real_unlink = os.unlink

    def refusing(path: str, *args: object, **kwargs: object) -> None:
        if str(path) == str(leftover):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refusing)
    swept = store.purge_temp(older_than=-60)
    assert swept.removed == 0
    assert f"{leftover}: Permission denied" in swept.skipped


def test_memory_filesystem_tier(make_file: MakeFile, small_threshold: int) -> None:
    """Any other fsspec store goes through the generic path: stream, read back, move."""
    store = BlobStore(f"memory://bifrost-{time.time_ns()}")
    paths = [make_file("a", b"x"), make_file("b", b"x"), make_file("c", 3 * small_threshold)]
    stored = store.put_files(paths, workers=1)
    assert [b.new for b in stored] == [True, False, True]
    assert stored[0].url.startswith("memory://")
    for blob in stored:
        assert store.rehash(blob.digest) == blob.digest
    assert store.usage() == 1 + 3 * small_threshold
    assert store.local_path(stored[0].digest) is None
    tier = store._tier
    tier.fs.pipe_file(f"{tier.base}/tmp/{'e' * 32}", b"a crashed put's")  # type: ignore[attr-defined]
    tier.fs.pipe_file(f"{tier.base}/tmp/notes.txt", b"someone else's")  # type: ignore[attr-defined]
    tier.fs.pipe_file(f"{tier.base}/tmp/sub/{'f' * 32}", b"someone else's")  # type: ignore[attr-defined]
    swept = store.purge_temp(older_than=-60)
    assert swept.removed == 1
    assert sorted(s.split(": ")[0].rsplit("/", 2)[-1] for s in swept.skipped) == ["f" * 32, "notes.txt"]
