"""The ingest tests' fixtures live in ingest_helpers (shared with tests/flows)."""

from ingest_helpers import delivery, production, s3_endpoint, s3_settings, settings

__all__ = ["delivery", "production", "s3_endpoint", "s3_settings", "settings"]
