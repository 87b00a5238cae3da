"""Blob leases: how a running ingest keeps `storage gc` off the blobs it is about to register.

The protocol. An ingest stores a batch's blobs (durable), leases their hashes in one short
transaction, checks that every one of them is still in the tier (re-storing from the
source any that went), registers its versions, and releases the leases. gc removes a blob,
record or file, only inside a transaction that holds `lock_for_gc` and only after checking,
in that transaction, that the blob has no reference and no live lease. Taking leases needs
the same lock, shared. So no blob can go between "leased" and "registered", and one that
went before the lease was taken is found by the check after it.

The lock is PostgreSQL's transaction-level advisory lock (gc exclusive, ingests shared, so
ingests do not wait for each other) or, on SQLite, the database's write lock, which every
transaction takes at BEGIN IMMEDIATE.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, exists, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bifrost_core.db.base import utcnow
from bifrost_core.db.bulk import insert_rows
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.storage.models import BlobLease

log = logging.getLogger(__name__)

# A lease must outlive the check and registration of its batch (seconds to minutes for a
# batch of thousands of files), and a crashed ingest's leases hold gc off their blobs for
# this long at most. Lease times come from each host's clock: an hour also absorbs skew.
LEASE_TTL = timedelta(hours=1)
# Any constant works, as long as nothing else in the database uses it: "bifrostg".
_LOCK_KEY = 0x626966726F737467


def _lock(session: Session, function: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SELECT {function}(:key)"), {"key": _LOCK_KEY})
    else:
        session.connection()  # starts the transaction: BEGIN IMMEDIATE takes the write lock


def lock_for_gc(session: Session) -> None:
    """Hold, until the transaction ends, the lock that keeps leases from being taken."""
    _lock(session, "pg_advisory_xact_lock")


def live(hash_column: ColumnElement[str], now: datetime) -> ColumnElement[bool]:
    """SQL: the blob with this hash has a lease that has not expired at `now`."""
    return exists().where(BlobLease.hash == hash_column, BlobLease.expires_at > now)


@contextmanager
def leased(database: Database, hashes: Collection[str]) -> Iterator[None]:
    """Lease `hashes` for the `with` block (one transaction to take them, one to release them)."""
    holder = f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"
    with UnitOfWork(database) as uow:
        _lock(uow.session, "pg_advisory_xact_lock_shared")
        expires = utcnow() + LEASE_TTL
        insert_rows(
            uow.session,
            BlobLease.__table__,
            ("hash", "holder", "expires_at"),
            ((digest, holder, expires) for digest in set(hashes)),
        )
        uow.commit()
    try:
        yield
    finally:
        _release(database, holder)


def _release(database: Database, holder: str) -> None:
    try:
        with UnitOfWork(database) as uow:
            uow.session.execute(delete(BlobLease).where(BlobLease.holder == holder))
            uow.commit()
    except SQLAlchemyError as exc:
        # The versions are registered (or the batch failed anyway): the leases only keep gc
        # off these blobs until they expire.
        log.warning("could not release blob leases %s (they expire by themselves): %s", holder, exc)


def drop_expired(database: Database) -> None:
    """Delete the leases of ingests that crashed or could not release them."""
    with UnitOfWork(database) as uow:
        uow.session.execute(delete(BlobLease).where(BlobLease.expires_at <= utcnow()))
        uow.commit()
