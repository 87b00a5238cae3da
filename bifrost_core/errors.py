"""One error hierarchy for the whole product.

Each class carries the HTTP status it maps to, so the API renders every expected
failure with one handler and the CLI prints the message as one line.
"""


class BifrostError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class ConfigError(BifrostError):
    status_code = 500
    code = "config_error"


class Unauthenticated(BifrostError):
    status_code = 401
    code = "unauthenticated"


class PermissionDenied(BifrostError):
    status_code = 403
    code = "forbidden"


class NotFound(BifrostError):
    status_code = 404
    code = "not_found"


class Conflict(BifrostError):
    status_code = 409
    code = "conflict"


class InvalidInput(BifrostError):
    status_code = 422
    code = "invalid_input"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class RateLimited(BifrostError):
    status_code = 429
    code = "rate_limited"


class DatabaseUnavailable(BifrostError):
    status_code = 503
    code = "database_unavailable"


class StorageError(BifrostError):
    status_code = 503
    code = "storage_error"


class DamagedContent(BifrostError):
    """Stored content found missing or corrupt (a verify run); the CLI's exit code 9."""

    status_code = 409
    code = "damaged_content"
