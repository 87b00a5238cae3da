"""Backups of Bifrost's database: SQLite copies by SQLite's backup API with a manifest of the
stored content (`sqlite.py`), PostgreSQL by pgBackRest's WAL archive and base backups
(`pgbackrest.py`, `archiver.py`), and what `bifrost backup` does with either (`service.py`)."""
