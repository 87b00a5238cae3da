"""Liveness and readiness: /healthz always answers; /readyz names what is not reachable."""

from __future__ import annotations

from bifrost_core.cache.backends import RedisCache
from tests.support.services import free_port


def test_healthz_and_readyz_need_no_token(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["cache"] == "ok (local)"
    assert checks["storage.hot"] == checks["storage.archive"] == "ok"


def test_readyz_names_what_is_down(make_client, monkeypatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("PREFECT_API_URL", dead + "/api")
    client = make_client(cache=RedisCache(f"redis://127.0.0.1:{free_port()}/0"))
    answer = client.get("/readyz")
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "not_ready"
    assert set(error["details"]) >= {"database", "cache", "prefect"}
    assert error["details"]["database"] == "ok"
    assert "ok" not in error["details"]["cache"]
    assert "ok" not in error["details"]["prefect"]
    assert client.get("/healthz").status_code == 200


def test_docs_and_openapi_are_served(client) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/shots/{shot_id}" in schema["paths"]
