"""Every ORM model, imported in one place so that the metadata (and alembic) sees them all."""

from bifrost_core.assets.models import Asset, AssetType, Casting
from bifrost_core.db.base import Base
from bifrost_core.events.models import Event
from bifrost_core.idempotency.models import IdempotencyKey
from bifrost_core.ingest.models import IngestFile, IngestRecord
from bifrost_core.projects.models import Episode, Project, Sequence, Shot
from bifrost_core.render.models import RenderChunk, RenderJob
from bifrost_core.replication.models import BlobReplica
from bifrost_core.reviews.models import Decision, Note, Playlist, PlaylistItem
from bifrost_core.runs.models import FlowRun
from bifrost_core.storage.models import Blob, BlobLease, BlobLocation
from bifrost_core.tasks.models import Task, TaskType, task_assignees
from bifrost_core.users.models import ApiToken, ProjectMembership, User
from bifrost_core.versions.models import Representation, RepresentationFile, Version, VersionCounter
from bifrost_core.workflow.models import Status, Transition

__all__ = [
    "ApiToken",
    "Asset",
    "AssetType",
    "Base",
    "Blob",
    "BlobLease",
    "BlobLocation",
    "BlobReplica",
    "Casting",
    "Decision",
    "Episode",
    "Event",
    "FlowRun",
    "IdempotencyKey",
    "IngestFile",
    "IngestRecord",
    "Note",
    "Playlist",
    "PlaylistItem",
    "Project",
    "ProjectMembership",
    "RenderChunk",
    "RenderJob",
    "Representation",
    "RepresentationFile",
    "Sequence",
    "Shot",
    "Status",
    "Task",
    "TaskType",
    "Transition",
    "User",
    "Version",
    "VersionCounter",
    "task_assignees",
]
