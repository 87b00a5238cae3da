"""Claiming an idempotency key in the caller's transaction.

The claim is an INSERT on a unique (user, key): a concurrent request with the same key
blocks on it until the first transaction ends. If that one committed, the late
request finds its stored answer; if it rolled back, the late request claims the key
itself. So N identical concurrent POSTs do the work exactly once.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bifrost_core.db.base import utcnow
from bifrost_core.errors import Conflict
from bifrost_core.idempotency.models import IdempotencyKey

KEEP_FOR = timedelta(hours=24)


class Replay(Exception):
    """The key was used before with the same request: answer what was answered then."""

    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(status_code)
        self.status_code = status_code
        self.body = body


def claim(session: Session, *, user_id: int, key: str, request_hash: str) -> int:
    """Claim `key` for this transaction and return the claim's id, or raise Replay / Conflict."""
    table = IdempotencyKey.__table__
    session.execute(
        delete(table).where(
            table.c.user_id == user_id, table.c.key == key, table.c.created_at < utcnow() - KEEP_FOR
        )
    )
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    claimed = session.execute(
        dialect.insert(table)
        .values(user_id=user_id, key=key, request_hash=request_hash, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(table.c.id)
    ).scalar()
    if claimed is not None:
        return claimed
    first = session.execute(
        select(table.c.id, table.c.request_hash, table.c.status_code, table.c.response_body).where(
            table.c.user_id == user_id, table.c.key == key
        )
    ).one()
    if first.request_hash != request_hash:
        raise Conflict("this Idempotency-Key was already used with a different request", key=key)
    if first.status_code is None:
        # Committed without an answer: a request that commits in two steps (starting a flow
        # run records it, commits, then asks Prefect) ended between them. The retry resumes
        # it under the same claim; what the first step recorded makes it do the work once.
        return first.id
    raise Replay(first.status_code, first.response_body)


def complete(session: Session, *, claim_id: int, status_code: int, body: str) -> None:
    table = IdempotencyKey.__table__
    session.execute(
        update(table).where(table.c.id == claim_id).values(status_code=status_code, response_body=body)
    )
