"""The ingest tests' fixtures live in ingest_helpers (shared with tests/flows)."""

from ingest_helpers import database, delivery, production, settings

__all__ = ["database", "delivery", "production", "settings"]
