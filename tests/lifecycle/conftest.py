"""The lifecycle tests' fixtures: those of the ingest tests (tests/support/ingest.py) and
tests/support/archive.py."""

from tests.support.ingest import delivery, production, s3_endpoint, s3_settings, settings

__all__ = ["delivery", "production", "s3_endpoint", "s3_settings", "settings"]
