"""Content-addressed blob store over one storage tier: a local folder or any fsspec URL.

A blob is addressed by the BLAKE3 hex digest of its bytes and lives at
``blobs/<d[:2]>/<d>`` under the tier root: 256 folders in all, so storing many small
files does not create a folder per file (a second level would add one mkdir per blob up
to 65,536). Each source byte is read once: it is hashed in the same pass as it is copied.


The tier's backend is chosen by the root's URL, one module each:

- local.py: a path or ``file://``: temporary files, one filesystem sync per batch, then
  renames into place (large files written with O_DIRECT, past the page cache);
- s3.py: S3 through s3fs: straight to each blob's final key, verified by Content-MD5 and
  the ETag returned;
- objects.py: any other fsspec store: a temporary path, read back to verify, then moved.

tier.py holds what they share: the content layout, what a put returns, and the loop that
reads a source again when it changed while read (source.py); store.py holds `BlobStore`,
which runs batches of puts on threads.

Identical content is stored once: a blob that already exists is not written again, once
it is shown to hold the right bytes (a small local blob is hashed, a large one hashed once
its new copy is on disk; an S3 object's ETag is compared with the MD5 of the bytes read;
other stores read it back). A damaged one is replaced by the new copy, atomically.

Garbage collection (`iter_blobs`, `delete`, `purge_temp`) touches only what the store
writes: blobs at their content paths and its own temporary files, never folders, never
symlinks, and counts what else it finds rather than failing on it.
"""

from bifrost_core.storage.blobstore.store import BlobStore
from bifrost_core.storage.blobstore.tier import (
    BlobInfo,
    GiB,
    MiB,
    PutResult,
    Swept,
    blob_key,
    check_digest,
    root_of,
)

__all__ = ["BlobInfo", "BlobStore", "GiB", "MiB", "PutResult", "Swept", "blob_key", "check_digest", "root_of"]
