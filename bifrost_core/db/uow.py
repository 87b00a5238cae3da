"""Unit of work: one transaction per request, command or task; rollback by default.

Side effects (cache invalidation, search indexing, event delivery, flow runs) are
queued on the session with `after_commit` and run only once the transaction has
committed; a rollback drops them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from bifrost_core.db.database import Database

log = logging.getLogger(__name__)
# Every transaction-scoped queue lives in session.info under a "bifrost_" key.
_PENDING = "bifrost_after_commit"


def after_commit(session: Session, callback: Callable[[], None], *, outermost: bool = False) -> None:
    """Run `callback` once the transaction commits.

    It is tied to the innermost transaction (savepoint) open now, so rolling that savepoint
    back drops it; `outermost=True` ties it to the whole transaction instead.
    """
    transaction = None if outermost else session.get_nested_transaction()
    session.info.setdefault(_PENDING, []).append((transaction, callback))


def _inside(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        # A savepoint was released: the outer transaction can still roll back, so wait for it.
        return
    for _transaction, callback in session.info.pop(_PENDING, []):
        try:
            callback()
        except Exception:
            # The data is committed; a failed side effect must not turn that into an error.
            log.exception("after-commit side effect failed")


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.nested:
        # A savepoint rolled back: drop only what was queued inside it, the outer work stands.
        pending = session.info.get(_PENDING, [])
        session.info[_PENDING] = [(t, cb) for t, cb in pending if not _inside(t, previous_transaction)]


@event.listens_for(Session, "after_transaction_end")
def _forget_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    # After a commit has run its callbacks, a rollback, or a close without either: what is
    # still queued belongs to a transaction that is over and must never run.
    if transaction.parent is None:
        for key in [key for key in session.info if key.startswith("bifrost_")]:
            del session.info[key]


class UnitOfWork:
    """`with UnitOfWork(db) as uow: ...; uow.commit()` — anything not committed rolls back."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = self.database.session()
        return self

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.session.rollback()
        finally:
            self.session.close()
