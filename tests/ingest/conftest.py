"""The ingest tests' fixtures live in tests/support/ingest.py (shared with tests/flows)."""

from tests.support.ingest import delivery, production, s3_endpoint, s3_settings, settings

__all__ = ["delivery", "production", "s3_endpoint", "s3_settings", "settings"]
