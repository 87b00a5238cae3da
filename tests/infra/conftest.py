"""The infra tests run real servers as the API tests do: `bifrost serve` in a subprocess."""

from tests.api.conftest import serve  # noqa: F401  (a fixture, used by name)
