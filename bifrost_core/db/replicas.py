"""Read replicas: PostgreSQL streaming standbys of the primary that take reads off it.

A read goes to a replica only when the replica is streaming from the primary, is at most
`max_lag` seconds behind, and has replayed the reader's own last write (the primary's WAL
position once that write committed), so whoever wrote something reads it back at once.
Otherwise, or when a replica does not answer, it goes to the primary. Each replica's state
is asked at most once a second per process.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import text

from bifrost_core.db.database import Database

log = logging.getLogger(__name__)
STATE_SECONDS = 1.0

# Replay position in bytes; lag 0 when everything received is replayed (an idle primary sends
# nothing, so the last replayed commit's age would grow without the replica falling behind).
_STATE = text(
    """
    SELECT pg_is_in_recovery(),
           (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint,
           (SELECT status FROM pg_stat_wal_receiver),
           EXISTS (SELECT 1 FROM pg_stat_wal_receiver),
           CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
           END
    """
)
_WRITTEN = text("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")


@dataclass(frozen=True)
class ReplicaState:
    usable: bool  # streaming and within the lag bound
    streaming: bool  # answers, is a standby, and receives the primary's WAL
    replayed: int  # WAL bytes replayed
    lag_seconds: float
    read_at: float


class Replicas:
    def __init__(
        self, primary: Database, urls: list[str], *, max_lag_seconds: float, pool_size: int = 5
    ) -> None:
        self.primary = primary
        self.replicas = [Database(url, pool_size=pool_size) for url in urls]
        self.max_lag = max_lag_seconds
        self._states: dict[int, ReplicaState] = {}
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def for_read(self, written: int | None = None) -> Database:
        """A replica that may serve a reader whose last write ended at WAL position `written`
        (None: no recent write), in turn; the primary when none may."""
        usable = [
            replica
            for index, replica in enumerate(self.replicas)
            if (state := self.state(index)).usable and (written is None or state.replayed >= written)
        ]
        return usable[next(self._turn) % len(usable)] if usable else self.primary

    def written(self) -> int:
        """The primary's WAL position now: what a replica must have replayed to show a write
        that just committed."""
        with self.primary.engine.connect() as connection:
            return int(connection.execute(_WRITTEN).scalar_one())

    def state(self, index: int) -> ReplicaState:
        now = time.monotonic()
        known = self._states.get(index)
        if known is not None and now - known.read_at < STATE_SECONDS:
            return known
        with self._lock:
            known = self._states.get(index)
            if known is None or now - known.read_at >= STATE_SECONDS:
                known = self._states[index] = self._read_state(index, now)
        return known

    def mark_down(self, database: Database) -> None:
        """A replica failed a request: no reads for it until its state is read again."""
        for index, replica in enumerate(self.replicas):
            if replica is database:
                self._states[index] = ReplicaState(False, False, 0, float("inf"), time.monotonic())

    def _read_state(self, index: int, now: float) -> ReplicaState:
        try:
            with self.replicas[index].engine.connect() as connection:
                recovering, replayed, status, receiving, lag = connection.execute(_STATE).one()
        except Exception as exc:  # down, refusing, or not PostgreSQL: the primary serves instead
            log.warning("read replica %d unusable: %s", index, str(exc).splitlines()[0])
            return ReplicaState(False, False, 0, float("inf"), now)
        if receiving and status is None:
            log.warning(
                "read replica %d: its WAL receiver is hidden from this user (grant it pg_monitor)", index
            )
        lag = float(lag)
        streaming = bool(recovering and status == "streaming")
        usable = streaming and replayed is not None and lag <= self.max_lag
        return ReplicaState(usable, streaming, int(replayed or 0), lag, now)

    def dispose(self) -> None:
        for replica in self.replicas:
            replica.dispose()
