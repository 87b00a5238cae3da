from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from bifrost_core.db.bulk import insert_rows
from bifrost_core.db.repository import Repository
from bifrost_core.versions.models import Representation, RepresentationFile, Version


class VersionRepository(Repository[Version]):
    model = Version
    label = "version"

    def latest(self, task_id: int, variant: str) -> Version | None:
        return self.session.scalars(
            self.select()
            .where(Version.task_id == task_id, Version.variant == variant)
            .order_by(Version.number.desc())
            .limit(1)
        ).first()


class RepresentationRepository(Repository[Representation]):
    model = Representation
    label = "representation"

    def select(self) -> Select:
        # Representations carry no project id of their own: scope through their version.
        stmt = select(Representation).join(Version, Version.id == Representation.version_id)
        project_ids = self.actor.project_ids
        return stmt if project_ids is None else stmt.where(Version.project_id.in_(project_ids))


def add_files(
    session: Session, representation_id: int, files: Iterable[tuple[int, str, int | None, str | None]]
) -> None:
    """Insert a representation's file rows, given as (blob id, name, frame, published path), in bulk."""
    insert_rows(
        session,
        RepresentationFile.__table__,
        ("representation_id", "blob_id", "name", "frame", "published_path"),
        ((representation_id, *row) for row in files),
    )
