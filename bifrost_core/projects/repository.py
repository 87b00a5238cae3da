from __future__ import annotations

from bifrost_core.db.repository import Repository
from bifrost_core.errors import NotFound
from bifrost_core.projects.models import Episode, Project, Sequence, Shot


class ProjectRepository(Repository[Project]):
    model = Project
    label = "project"
    scope_column = "id"

    def by_code(self, code: str) -> Project:
        project = self.first(Project.code == code)
        if project is None:
            raise NotFound(f"project {code!r} not found")
        return project


class EpisodeRepository(Repository[Episode]):
    model = Episode
    label = "episode"

    def by_code(self, project_id: int, code: str) -> Episode:
        episode = self.first(Episode.project_id == project_id, Episode.code == code)
        if episode is None:
            raise NotFound(f"episode {code!r} not found")
        return episode


class SequenceRepository(Repository[Sequence]):
    model = Sequence
    label = "sequence"

    def by_code(self, project_id: int, code: str) -> Sequence:
        sequence = self.first(Sequence.project_id == project_id, Sequence.code == code)
        if sequence is None:
            raise NotFound(f"sequence {code!r} not found")
        return sequence


class ShotRepository(Repository[Shot]):
    model = Shot
    label = "shot"

    def by_code(self, sequence_id: int, code: str) -> Shot:
        shot = self.first(Shot.sequence_id == sequence_id, Shot.code == code)
        if shot is None:
            raise NotFound(f"shot {code!r} not found")
        return shot
