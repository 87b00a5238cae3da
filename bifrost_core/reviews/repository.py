from __future__ import annotations

from bifrost_core.db.repository import Repository
from bifrost_core.reviews.models import Note


class NoteRepository(Repository[Note]):
    model = Note
    label = "note"
