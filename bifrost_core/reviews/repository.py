from __future__ import annotations

from sqlalchemy import func, select

from bifrost_core.db.repository import Repository
from bifrost_core.reviews.models import Decision, Note, Playlist
from bifrost_core.versions.models import Representation


class NoteRepository(Repository[Note]):
    model = Note
    label = "note"


class PlaylistRepository(Repository[Playlist]):
    model = Playlist
    label = "playlist"


class DecisionRepository(Repository[Decision]):
    model = Decision
    label = "decision"


def frame_range(session, version_id: int) -> tuple[int, int] | None:
    """The frames a version spans: the union of its representations' ranges (None: no frames)."""
    first, last = session.execute(
        select(func.min(Representation.frame_in), func.max(Representation.frame_out)).where(
            Representation.version_id == version_id, Representation.frame_in.is_not(None)
        )
    ).one()
    return None if first is None else (first, last)
