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
from sqlalchemy.orm import Session

from bifrost_core.db.database import Database

log = logging.getLogger(__name__)
# Every transaction-scoped queue lives in session.info under a "bifrost_" key.
_PENDING = "bifrost_after_commit"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    session.info.setdefault(_PENDING, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_PENDING, []):
        try:
            callback()
        except Exception:
            # The data is committed; a failed side effect must not turn that into an error.
            log.exception("after-commit side effect failed")


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
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
