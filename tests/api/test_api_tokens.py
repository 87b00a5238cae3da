"""Tokens made through the API are bounded by the token that made them; the rate limit is per user."""

from __future__ import annotations

import time
from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import select

from api import deps
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.events.models import Event
from bifrost_core.scope import SYSTEM
from bifrost_core.users import service as users
from bifrost_core.users.schemas import TokenCreate
from tests.support.world import World


def _operator_token(database, world: World, who: str, days: int | None) -> dict:
    """A token made as `bifrost token create` makes them: by the operator, with no parent."""
    with UnitOfWork(database) as uow:
        issued = users.create_token(
            uow.session, actor=SYSTEM, user_id=world.user_ids[who], data=TokenCreate(expires_in_days=days)
        )
        uow.commit()
    assert issued.parent_id is None
    return issued.model_dump(mode="json")


def _bearer(token: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['token']}"}


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def test_a_minted_token_never_outlives_the_token_that_made_it(client, database, world: World) -> None:
    parent = _operator_token(database, world, "artist", days=2)
    limit = _when(parent["expires_at"])

    for body in ({}, {"expires_in_days": 3650}):
        child = client.post("/tokens", json=body, headers=_bearer(parent))
        assert child.status_code == 201, child.text
        assert _when(child.json()["expires_at"]) == limit
        assert child.json()["parent_id"] == parent["id"]
    shorter = client.post("/tokens", json={"expires_in_days": 1}, headers=_bearer(parent)).json()
    assert _when(shorter["expires_at"]) < limit

    # A child bounds its own children the same way.
    grandchild = client.post("/tokens", json={}, headers=_bearer(shorter)).json()
    assert _when(grandchild["expires_at"]) == _when(shorter["expires_at"])

    # An admin's expiring token bounds the tokens it makes for others too.
    admin = _operator_token(database, world, "admin", days=2)
    service = client.post(f"/users/{world.user_ids['service']}/tokens", json={}, headers=_bearer(admin))
    assert service.status_code == 201, service.text
    assert (_when(service.json()["expires_at"]), service.json()["parent_id"]) == (
        _when(admin["expires_at"]),
        admin["id"],
    )

    # A token without expiry makes tokens without one, unless asked.
    forever = _operator_token(database, world, "artist", days=None)
    assert client.post("/tokens", json={}, headers=_bearer(forever)).json()["expires_at"] is None
    thirty = client.post("/tokens", json={"expires_in_days": 30}, headers=_bearer(forever)).json()
    assert thirty["expires_at"] is not None


def test_revoking_a_token_revokes_every_token_made_with_it(client, database, world: World) -> None:
    parent = _operator_token(database, world, "admin", days=None)
    child = client.post("/tokens", json={"name": "child"}, headers=_bearer(parent)).json()
    grandchild = client.post("/tokens", json={"name": "grandchild"}, headers=_bearer(child)).json()
    artists = f"/users/{world.user_ids['artist']}/tokens"
    for_artist = client.post(artists, json={}, headers=_bearer(child)).json()
    sibling = _operator_token(database, world, "admin", days=None)
    for token in (child, grandchild, for_artist):
        assert client.get("/users/me", headers=_bearer(token)).status_code == 200  # now cached

    answer = client.delete(f"/tokens/{parent['id']}", headers=_bearer(sibling))
    assert answer.status_code == 200, answer.text

    for token in (parent, child, grandchild, for_artist):
        refused = client.get("/users/me", headers=_bearer(token))
        assert refused.status_code == 401, token
    assert client.get("/users/me", headers=_bearer(sibling)).status_code == 200
    assert client.get("/users/me", headers=world.headers("artist")).status_code == 200
    with UnitOfWork(database) as uow:
        revoked = uow.session.scalars(select(Event.entity_id).where(Event.kind == "token.revoked")).all()
    assert sorted(revoked) == sorted(t["id"] for t in (parent, child, grandchild, for_artist))


def test_the_rate_limit_is_shared_by_a_users_tokens(make_client, database, world: World, monkeypatch) -> None:
    # One minute window throughout, whatever the clock says.
    monkeypatch.setattr(deps, "time", SimpleNamespace(time=lambda: 1_000_010.0, monotonic=time.monotonic))
    client = make_client(api_rate_limit=4)
    first = world.headers("coordinator")
    minted = client.post("/tokens", json={}, headers=first)
    assert minted.status_code == 201
    second = _bearer(minted.json())
    assert client.get("/projects", headers=second).status_code == 200
    assert client.get("/projects", headers=first).status_code == 200
    assert client.get("/projects", headers=second).status_code == 200
    # Four requests by this user so far, over two tokens: a third token does not help either.
    third = _bearer(_operator_token(database, world, "coordinator", days=None))
    for headers in (first, second, third):
        limited = client.get("/projects", headers=headers)
        assert limited.status_code == 429, limited.text
        assert limited.json()["error"]["message"] == "rate limit of 4 requests per minute per user exceeded"
    # Another user has their own budget.
    assert client.get("/projects", headers=world.headers("artist")).status_code == 200
