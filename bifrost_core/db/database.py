"""Engines and sessions for SQLite (embedded default) and PostgreSQL (studio)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bifrost_core.errors import DatabaseUnavailable


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # pysqlite's own transaction handling is off: SQLAlchemy's "begin" hook below starts them.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(conn) -> None:
    # Writers take the lock at BEGIN, so a read-then-write (version numbers) never
    # fails with "database is locked" half-way through.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_db_engine(url: str, *, pool_size: int = 5) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailable(
                    f"cannot create the folder of the database {folder}: {exc.strerror}"
                ) from None
        # sqlalchemy.create_engine, looked up when called: tracing wraps it (bifrost_core/telemetry.py).
        engine = sqlalchemy.create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sqlalchemy.create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


class Database:
    """One engine and its session factory; the unit of work opens sessions from it."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        self.engine = create_db_engine(url, pool_size=pool_size)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.sessionmaker()

    def check(self) -> None:
        """Fail with one clear line when the database cannot be reached."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            safe_url = make_url(self.url).render_as_string(hide_password=True)
            raise DatabaseUnavailable(f"cannot reach the database at {safe_url}: {reason}") from None

    def dispose(self) -> None:
        self.engine.dispose()
