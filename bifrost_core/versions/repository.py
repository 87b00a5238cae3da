from __future__ import annotations

from sqlalchemy import Select, select

from bifrost_core.db.repository import Repository
from bifrost_core.versions.models import Representation, Version


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
