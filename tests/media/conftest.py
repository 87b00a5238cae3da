"""The review-media tests' fixtures: tests/support/ingest.py's production and settings."""

from tests.support.ingest import production, settings

__all__ = ["production", "settings"]
