"""Benchmarks that print figures (nothing asserts). Run them from the repository root as
modules, `.venv/bin/python -m bench.<name>`, so that they import the tests' helpers
(`tests.support`) the way the tests do."""
