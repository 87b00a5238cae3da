"""Plain data that ingest passes between its steps (and Prefect passes between tasks).

Everything here serialises to JSON: tasks exchange plans and results, never sessions.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bifrost_core.jsonbounds import JsonObject
from bifrost_core.schemas import InputSchema

PlanStatus = Literal["new", "changed", "known"]


class SourceFile(BaseModel):
    """One source file as scanned: where it is, what stat() said, and its hash once known."""

    path: str
    name: str
    size: int
    mtime_ns: int
    frame: int | None = None
    hash: str | None = None


class Target(BaseModel):
    """What a version belongs to: a shot (sequence + shot) or an asset, a task and a variant."""

    model_config = ConfigDict(frozen=True)

    sequence: str | None = None
    shot: str | None = None
    asset: str | None = None
    task: str
    variant: str = "main"

    @property
    def label(self) -> str:
        entity = f"{self.sequence}/{self.shot}" if self.shot else f"asset {self.asset}"
        return f"{entity} {self.task} {self.variant}"


class PlannedRepresentation(BaseModel):
    name: str
    kind: Literal["frames", "movie", "proxy", "thumbnail", "file"]
    source: str
    frame_in: int | None = None
    frame_out: int | None = None
    frame_padding: int | None = None
    missing_frames: str = ""
    # File name without frame and extension, and the extension: what published paths use.
    stem: str = ""
    ext: str = ""
    files: list[SourceFile]


class PlannedVersion(BaseModel):
    target: Target
    status: PlanStatus
    representations: list[PlannedRepresentation]
    # Set when every hash is known at planning time (a rerun): the content key and, if known, the version.
    key: str | None = None
    version_id: int | None = None
    version_number: int | None = None
    # A known version's blobs that are missing from the tier: the run stores them again.
    missing: int = 0

    @property
    def files(self) -> list[SourceFile]:
        return [file for rep in self.representations for file in rep.files]

    @property
    def size(self) -> int:
        return sum(file.size for file in self.files)


class Problem(BaseModel):
    """A path that could not be ingested, and why (one line)."""

    path: str
    message: str


class HeldBack(BaseModel):
    """A version not registered because something of it could not be taken: its target
    (label) and the problems that held it back."""

    target: str
    problems: list[Problem]

    @property
    def reason(self) -> str:
        return "; ".join(f"{problem.path}: {problem.message}" for problem in self.problems)


class IngestPlan(BaseModel):
    project: str
    source: str
    tier: str
    versions: list[PlannedVersion] = Field(default_factory=list)
    unmatched: list[Problem] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)
    held_back: list[HeldBack] = Field(default_factory=list)
    # Files the scan found (taken or not): what "nothing matched" is out of.
    files_seen: int = 0

    def count(self, status: PlanStatus) -> int:
        return sum(1 for version in self.versions if version.status == status)

    @property
    def pending(self) -> list[PlannedVersion]:
        """Versions to store and register, and known ones whose missing blobs to store again."""
        return [version for version in self.versions if version.status != "known" or version.missing]


class DurableBlob(BaseModel):
    """A blob that is durable in a tier: safe to record."""

    hash: str
    size: int
    url: str


class StoreResult(BaseModel):
    """The outcome of storing one batch: blobs per source path, per-file failures, what was
    copied, and the hashes of blobs found missing or damaged and stored again."""

    blobs: dict[str, DurableBlob] = Field(default_factory=dict)
    problems: list[Problem] = Field(default_factory=list)
    bytes_copied: int = 0
    files_copied: int = 0
    repaired: set[str] = Field(default_factory=set)


class CreatedVersion(BaseModel):
    version_id: int
    target: str
    number: int
    representations: int
    files: int
    size: int


class IngestSummary(BaseModel):
    """What an ingest or publish run did, for the CLI, the API and the Prefect artifacts."""

    project: str
    source: str
    tier: str
    dry_run: bool = False
    planned_new: int = 0
    planned_changed: int = 0
    known: int = 0
    created: list[CreatedVersion] = Field(default_factory=list)
    unmatched: list[Problem] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)
    held_back: list[HeldBack] = Field(default_factory=list)
    files: int = 0
    bytes: int = 0
    files_copied: int = 0
    bytes_copied: int = 0
    blobs_repaired: int = 0
    plan: IngestPlan | None = None

    @property
    def changed_anything(self) -> bool:
        """Whether the run left a mark worth its event (a rerun that found everything done
        leaves no trace but its Prefect run)."""
        return bool(self.created or self.problems or self.held_back or self.blobs_repaired)


class PublishFile(InputSchema):
    path: str = Field(min_length=1)


class PublishRequest(InputSchema):
    """What the publish flow plans: one version from an artist or a DCC tool, its files and
    what they are (built from the flow's parameters, which carry the limits)."""

    project: str = Field(min_length=1, description="Project code")
    sequence: str | None = Field(default=None, description="Sequence code (for a shot)")
    shot: str | None = Field(default=None, description="Shot code")
    asset: str | None = Field(default=None, description="Asset code (instead of a shot)")
    task: str = Field(min_length=1, description="Task name, created on the entity if missing")
    variant: str = Field(default="main")
    comment: str = Field(default="", max_length=10_000)
    files: list[str] = Field(min_length=1, description="Files or image-sequence frames to publish")
    frame_in: int | None = Field(default=None, description="Expected first frame (checked)")
    frame_out: int | None = Field(default=None, description="Expected last frame (checked)")
    meta: JsonObject = Field(default_factory=dict)
    tier: str = Field(default="hot")
    dry_run: bool = Field(default=False, description="Only plan: report what would be created")
