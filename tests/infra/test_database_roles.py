"""infra/database/roles.sql on a throwaway PostgreSQL database: the migrator role migrates and
initialises it, the API runs as the API role (writes and reads through HTTP), the API role
cannot change the schema and the reader role cannot write. Role names carry a prefix of their
own, so the cluster-wide roles of parallel runs do not meet; they are dropped at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import errors

from tests.support.services import PG_SERVER, service_missing

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ROLES_SQL = Path(__file__).resolve().parents[2] / "infra" / "database" / "roles.sql"
BIFROST = str(Path(sys.executable).parent / "bifrost")
LOGINS = ("migrator", "api", "worker", "reader")
GROUPS = ("owner", "readwrite", "readonly")


@dataclass
class RolesDatabase:
    name: str
    prefix: str

    def url(self, login: str, driver: str = "postgresql") -> str:
        server = PG_SERVER.split("://", 1)[1].split("@", 1)[-1]
        return f"{driver}://{self.prefix}_{login}@{server}/{self.name}"

    def apply_roles(self) -> subprocess.CompletedProcess:
        admin = f"{PG_SERVER}/{self.name}"
        return subprocess.run(
            [
                *("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"prefix={self.prefix}"),
                *("-d", admin, "-f", str(ROLES_SQL)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def roles_database(pg_admin_url: str) -> Iterator[RolesDatabase]:
    if shutil.which("psql") is None:
        service_missing("psql (Debian's postgresql-client)", "not on PATH")
    suffix = uuid.uuid4().hex[:10]
    database = RolesDatabase(name=f"bifrost_roles_{suffix}", prefix=f"bifrost_t{suffix}")
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database.name}"')
    try:
        yield database
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
            # Logins first: a group cannot be dropped while it has members' grants pending.
            for role in (*LOGINS, *GROUPS):
                admin.execute(f'DROP ROLE IF EXISTS "{database.prefix}_{role}"')


def test_each_process_gets_only_its_privileges(roles_database: RolesDatabase, serve, tmp_path: Path) -> None:
    applied = roles_database.apply_roles()
    assert applied.returncode == 0, applied.stderr
    again = roles_database.apply_roles()  # the script may be run again: it converges
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""

    clean = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    init = subprocess.run(
        [BIFROST, "init"],
        env={
            **clean,
            "BIFROST_HOME": str(tmp_path / "init-home"),
            "BIFROST_DATABASE_URL": roles_database.url("migrator", "postgresql+psycopg"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    token = init.stdout.strip().splitlines()[-1]
    assert token.startswith("bft_")

    prefix = roles_database.prefix
    with psycopg.connect(roles_database.url("reader")) as reader:
        tables = reader.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
        owners = {row[0] for row in tables}
    # The tables belong to the owner group, not to the login that ran the migrations.
    assert owners == {f"{prefix}_owner"}

    url = serve({"BIFROST_DATABASE_URL": roles_database.url("api", "postgresql+psycopg")})
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    project = {"code": "ROLES", "name": "Roles"}
    created = httpx.post(f"{url}/projects", json=project, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    listed = httpx.get(f"{url}/projects", headers=headers, timeout=30)
    assert listed.status_code == 200
    assert "ROLES" in listed.text

    with psycopg.connect(roles_database.url("api"), autocommit=True) as api:
        assert api.execute("SELECT current_user").fetchone() == (f"{prefix}_api",)
        for statement in (
            "CREATE TABLE intruder (id integer)",
            "DROP TABLE projects",
            "ALTER TABLE projects ADD COLUMN intruder integer",
            "TRUNCATE events",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                api.execute(statement)

    with psycopg.connect(roles_database.url("worker"), autocommit=True) as worker:
        # The workers write rows (versions, events) as the API does.
        assert worker.execute("SELECT count(*) FROM projects WHERE code = 'ROLES'").fetchone() == (1,)
        worker.execute("UPDATE projects SET name = 'Roles, renamed' WHERE code = 'ROLES'")
        with pytest.raises(errors.InsufficientPrivilege):
            worker.execute("CREATE TABLE intruder (id integer)")

    with psycopg.connect(roles_database.url("reader"), autocommit=True) as reader:
        renamed = reader.execute("SELECT name FROM projects WHERE code = 'ROLES'").fetchone()
        assert renamed == ("Roles, renamed",)
        with pytest.raises(errors.ReadOnlySqlTransaction):
            reader.execute("DELETE FROM projects")
        # Read-only by privilege too, not only by the session default a client could change.
        reader.execute("SET default_transaction_read_only = off")
        with pytest.raises(errors.InsufficientPrivilege):
            reader.execute("DELETE FROM projects")

    # Nobody outside Bifrost's roles may connect to its database.
    outsider = f"bifrost_out{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{outsider}" LOGIN')
        try:
            server = PG_SERVER.split("://", 1)[1].split("@", 1)[-1]
            with pytest.raises(psycopg.OperationalError, match="permission denied"):
                psycopg.connect(f"postgresql://{outsider}@{server}/{roles_database.name}").close()
        finally:
            admin.execute(f'DROP ROLE "{outsider}"')


def test_roles_adopt_a_database_migrated_before_them(roles_database: RolesDatabase) -> None:
    """A studio that ran Bifrost as the postgres superuser first: the script hands every existing
    table and sequence to the owner group and grants the other roles what they need on them."""
    from bifrost_core.db import migrate
    from bifrost_core.db.database import Database

    database = Database(f"postgresql+psycopg://{PG_SERVER.split('://', 1)[1]}/{roles_database.name}")
    try:
        migrate.upgrade(database)
    finally:
        database.dispose()
    applied = roles_database.apply_roles()
    assert applied.returncode == 0, applied.stderr

    prefix = roles_database.prefix
    with psycopg.connect(f"{PG_SERVER}/{roles_database.name}") as admin:
        tables = [
            row[0] for row in admin.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        assert len(tables) > 10
        owners = admin.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        assert owners == [(f"{prefix}_owner",)]
        sequence_owners = admin.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c"
            " WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace"
        ).fetchall()
        assert sequence_owners in ([], [(f"{prefix}_owner",)])
        for table in tables:
            for role, privilege, expected in (
                ("api", "INSERT", True),
                ("worker", "DELETE", True),
                ("reader", "SELECT", True),
                ("reader", "UPDATE", False),
                ("api", "TRUNCATE", False),
            ):
                granted = admin.execute(
                    "SELECT has_table_privilege(%s, %s, %s)",
                    (f"{prefix}_{role}", f"public.{table}", privilege),
                ).fetchone()
                assert granted == (expected,), f"{role} {privilege} on {table}"
