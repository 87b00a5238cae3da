"""X-Forwarded-For is believed only from the proxies in BIFROST_API_TRUSTED_PROXIES, against a
real `bifrost serve` (uvicorn's own proxy-header handling is what is under test)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.slow

LIMIT = 3
BAD = {"Authorization": "Bearer guessed-token"}


def _until_refused(url: str, forwarded_for: list[str]) -> httpx.Response | None:
    """Bad tokens, one per forwarded address, until one is refused with 429. LIMIT failures
    always fall in one minute window within 2 * LIMIT + 1 requests, wherever the minute ends."""
    for address in forwarded_for:
        answer = httpx.get(f"{url}/projects", headers={**BAD, "X-Forwarded-For": address}, timeout=30)
        if answer.status_code == 429:
            return answer
        assert answer.status_code == 401, answer.text
    return None


def test_a_forged_forwarded_address_does_not_dodge_the_failure_limit(serve) -> None:
    url = serve({"BIFROST_API_AUTH_FAILURES": str(LIMIT)})
    refused = _until_refused(url, [f"10.0.0.{n}" for n in range(1, 2 * LIMIT + 2)])
    assert refused is not None, "a new X-Forwarded-For per request escaped the failure limit"
    assert refused.json()["error"]["message"].startswith("too many failed authentications from 127.0.0.1;")


def test_a_trusted_proxy_forwards_the_client_address(serve) -> None:
    url = serve(
        {"BIFROST_API_AUTH_FAILURES": str(LIMIT), "BIFROST_API_TRUSTED_PROXIES": "127.0.0.1,10.9.0.0/16"}
    )
    refused = _until_refused(url, ["10.0.0.1"] * (2 * LIMIT + 1))
    assert refused is not None
    assert refused.json()["error"]["message"].startswith("too many failed authentications from 10.0.0.1;")
    # Another client behind the same proxy is counted on its own.
    other = httpx.get(f"{url}/projects", headers={**BAD, "X-Forwarded-For": "10.0.0.2"}, timeout=30)
    assert other.status_code == 401, other.text
