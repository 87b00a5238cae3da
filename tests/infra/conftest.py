"""The infra tests run real servers as the API tests do: `bifrost serve` in a subprocess, on a
database of its own."""

from tests.api.conftest import pg_database_url, serve  # noqa: F401  (fixtures, used by name)
