"""`bifrost token create/list/revoke` in real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api import auth
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import Unauthenticated
from bifrost_core.users import service as users
from tests.support.world import World

BIFROST = str(Path(sys.executable).parent / "bifrost")


def _run(database, world: World, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`bifrost token ...` acting as the world's admin, through its API token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    env.update(
        BIFROST_DATABASE_URL=database.url,
        BIFROST_HOME=str(tmp_path / "home"),
        BIFROST_TOKEN=world.tokens["admin"],
    )
    return subprocess.run([BIFROST, "token", *args], env=env, capture_output=True, text=True, timeout=120)


def test_token_commands(database, world: World, tmp_path: Path) -> None:
    options = ("--name", "maya on ws042", "--expires-in-days", "30", "--json")
    created = _run(database, world, tmp_path, "create", "artist", *options)
    assert created.returncode == 0, created.stderr
    issued = json.loads(created.stdout)
    assert issued["token"].startswith("bft_")
    assert issued["parent_id"] is None  # the operator's tokens are bound to no other token
    with UnitOfWork(database) as uow:
        actor, _token = users.authenticate(uow.session, issued["token"])
    assert actor.username == "artist"

    listed = json.loads(_run(database, world, tmp_path, "list", "--user", "artist", "--json").stdout)
    assert {token["name"] for token in listed} == {"test", "maya on ws042"}
    assert all("token" not in token and "token_hash" not in token for token in listed)

    revoked = _run(database, world, tmp_path, "revoke", str(issued["id"]))
    assert revoked.returncode == 0
    with UnitOfWork(database) as uow, pytest.raises(Unauthenticated):
        users.authenticate(uow.session, issued["token"])

    missing = _run(database, world, tmp_path, "create", "nobody")
    assert missing.returncode == 3
    assert missing.stderr.strip() == "error: user 'nobody' not found"


def test_a_revocation_elsewhere_reaches_an_api_without_redis(
    make_client, database, world: World, tmp_path: Path, monkeypatch
) -> None:
    """`bifrost token revoke` in its own process: this API process's in-process cache hears
    nothing of it, and learns it from the database at its next poll."""
    monkeypatch.setattr(auth, "REVOCATION_POLL", 3600.0)
    client = make_client()
    headers = world.headers("artist")
    assert client.get("/projects", headers=headers).status_code == 200
    revoked = _run(database, world, tmp_path, "revoke", str(world.token_ids["artist"]))
    assert revoked.returncode == 0, revoked.stderr
    assert client.get("/projects", headers=headers).status_code == 200  # cached, no poll due
    monkeypatch.setattr(auth, "REVOCATION_POLL", 0.0)
    answer = client.get("/projects", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == "invalid or expired token"
