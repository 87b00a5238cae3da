"""Tier roots: the root a project's tier writes to, its store, and whether it is usable.

A tier root must exist before anything is stored in it. A folder or bucket that is not
there is a configuration error (a NAS not mounted, a misspelt bucket), reported at once in
one line naming the tier and root: never created silently, never retried as if transient.
Bifrost creates only the roots it chose itself: the default ones under BIFROST_HOME.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from bifrost_core.codes import project_by_code
from bifrost_core.config import Settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import BifrostError, ConfigError, InvalidInput
from bifrost_core.projects.models import Project
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.storage.errors import storage_error

_stores: dict[tuple[str, str, str], BlobStore] = {}
# Copy (and rehash) threads per batch. Local copies are bound by the CPU and the kernel: on the 2-core
# reference machine, 4 threads stored 10,000 small files in 1.2-1.5 s against 0.9-1.2 s
# for 1 or 2, spending 1.6 times the CPU fighting over the GIL, which registration needs
# meanwhile. Object stores wait on the network, so more uploads in flight pay off.
LOCAL_WORKERS = 2
OBJECT_WORKERS = 4


def copy_workers(store: BlobStore) -> int:
    return LOCAL_WORKERS if store.is_local else OBJECT_WORKERS


def tier_root(settings: Settings, project: Project, tier: str) -> str:
    """The root URL of a project's tier: the project's own setting, else the studio default."""
    roots = {**settings.tier_roots, **(project.storage_tiers or {})}
    if tier not in roots:
        raise InvalidInput(f"project {project.code} has no storage tier {tier!r} (tiers: {', '.join(roots)})")
    return str(roots[tier])


def blob_store(settings: Settings, root: str, tier: str) -> BlobStore:
    """One store per root, options and process (an S3 client is worth reusing), opened
    with the storage options the settings give for its URL."""
    options = settings.storage_options_for(root)
    key = (root, tier, json.dumps(options, sort_keys=True, default=str))
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = BlobStore(root, name=tier, storage_options=options)
    return store


def project_store(database: Database, settings: Settings, project: str, tier: str) -> tuple[int, BlobStore]:
    """A project's id and the store of its tier (unchecked: see `usable_store`)."""
    with UnitOfWork(database) as uow:
        found = project_by_code(uow.session, SYSTEM, project)
        return found.id, blob_store(settings, tier_root(settings, found, tier), tier)


def usable_store(settings: Settings, root: str, tier: str) -> BlobStore:
    """The store of a tier root once checked: it exists and takes a write (BlobStore.check).

    A default root under the home is created first; any other root must exist already.
    """
    if root in settings.home_tier_roots.values():
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as exc:
            raise storage_error(tier, f"creating {root}", exc) from exc
    store = blob_store(settings, root, tier)
    store.check()
    return store


@dataclass(frozen=True)
class TierRoot:
    """A root in use: by the studio's defaults (`project` None) or by a project's own tiers."""

    tier: str
    root: str
    project: str | None = None

    @property
    def label(self) -> str:
        return f"storage.{self.tier}" + (f" ({self.project})" if self.project else "")


def every_root(database: Database, settings: Settings) -> list[TierRoot]:
    """The studio's default tier roots, then each project's own (a root once)."""
    roots = [TierRoot(tier, str(root)) for tier, root in settings.tier_roots.items()]
    seen = {(root.tier, root.root) for root in roots}
    with UnitOfWork(database) as uow:
        rows = uow.session.execute(select(Project.code, Project.storage_tiers).order_by(Project.id)).all()
        for code, tiers in rows:
            for tier, root in (tiers or {}).items():
                if (tier, str(root)) not in seen:
                    seen.add((tier, str(root)))
                    roots.append(TierRoot(tier, str(root), code))
    return roots


def check_every_root(database: Database, settings: Settings) -> None:
    """Check every tier root in use (see `usable_store`); one ConfigError, StorageError or
    StorageFull line naming each that is not usable, after all were tried."""
    errors: list[BifrostError] = []
    for root in every_root(database, settings):
        try:
            usable_store(settings, root.root, root.tier)
        except BifrostError as exc:
            errors.append(exc if root.project is None else type(exc)(f"{exc} (project {root.project})"))
    if errors:
        # A root that is wrong outweighs a store that cannot be reached: fix the settings first.
        kind = ConfigError if any(isinstance(error, ConfigError) for error in errors) else type(errors[0])
        raise kind("; ".join(str(error) for error in errors))


class RootProbes:
    """Root checks of every tier root, each result reused for `max_age` seconds, so that a
    load balancer asking for readiness every second does not write to the stores as often."""

    def __init__(self, max_age: float = 30.0) -> None:
        self.max_age = max_age
        self._results: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def problems(self, database: Database, settings: Settings) -> dict[str, str | None]:
        """Label of each root in use -> None if usable, else the one-line reason."""
        out: dict[str, str | None] = {}
        now = time.monotonic()
        for root in every_root(database, settings):
            key = (root.tier, root.root)
            with self._lock:
                cached = self._results.get(key)
            if cached is None or now - cached[0] >= self.max_age:
                try:
                    usable_store(settings, root.root, root.tier)
                    cached = (now, None)
                except BifrostError as exc:
                    cached = (now, str(exc))
                except Exception as exc:  # any backend failure means "not ready", never a 500
                    cached = (now, f"storage tier {root.tier}: {type(exc).__name__}: {exc}")
                with self._lock:
                    self._results[key] = cached
            out[root.label] = cached[1]
        return out
