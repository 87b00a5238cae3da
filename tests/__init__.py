"""Bifrost's tests. A package so that their shared helpers import as `tests.support.<name>`
(pytest puts the repository root on sys.path: `pythonpath` in pyproject.toml)."""
