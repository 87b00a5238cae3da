"""The Python client (clients/python) as a DCC installs it: in a fresh virtual environment
that holds only the client and the distributions its metadata requires (httpx, pydantic
and theirs), none of the server's. There it imports, talks to a real `bifrost serve`, and
never imports (could not even find) Prefect, SQLAlchemy, FastAPI or Bifrost's own packages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.versions.models import Version
from tests.support.world import build_world

pytestmark = pytest.mark.slow

CLIENT_SOURCE = Path(__file__).resolve().parents[2] / "clients" / "python" / "src" / "bifrost_client"
# The server's import names, this repository's and its heavy dependencies'.
SERVER_PACKAGES = [
    "alembic",
    "api",
    "bifrost_core",
    "cli",
    "deployments",
    "fastapi",
    "flows",
    "prefect",
    "sqlalchemy",
    "starlette",
    "tasks",
    "uvicorn",
]

# Runs in the fresh environment: argv = url, token, task id, another project's shot id.
CHILD = """
import importlib.util, json, sys
from bifrost_client import ApiError, BifrostClient

url, token, task_id, foreign_shot = sys.argv[1:5]
server = json.loads(sys.argv[5])
with BifrostClient(url, token) as bifrost:
    me = bifrost.me()["username"]
    version = bifrost.publish(int(task_id), comment="from a DCC")
    try:
        bifrost.get("shots", int(foreign_shot))
        refused = None
    except ApiError as error:
        refused = [error.status, error.code]
print(json.dumps({
    "me": me,
    "version": [version.id, version.number, version.comment],
    "refused": refused,
    "imported": sorted(name for name in sys.modules if name.split(".")[0] in server),
    "findable": [name for name in server if importlib.util.find_spec(name) is not None],
}))
"""


def requirement_closure(name: str) -> dict[str, metadata.Distribution]:
    """The installed distributions `name` requires, transitively (extras left out), by name."""
    found: dict[str, metadata.Distribution] = {}
    pending = [name]
    while pending:
        dist = metadata.distribution(pending.pop())
        key = canonicalize_name(dist.metadata["Name"])
        if key in found:
            continue
        found[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return found


def fresh_environment(root: Path) -> Path:
    """A new venv (no system site-packages) with the client's files and, linked in, the files
    of each distribution it requires; answers its Python."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    python = root / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    shutil.copytree(CLIENT_SOURCE, site / "bifrost_client", ignore=shutil.ignore_patterns("__pycache__"))
    dependencies = requirement_closure("bifrost-client")
    del dependencies["bifrost-client"]
    for dist in dependencies.values():
        tops = {file.parts[0] for file in dist.files or []}
        for top in tops - {"..", "__pycache__"}:
            target = site / top
            if not target.exists():
                target.symlink_to(Path(dist.locate_file(top)))
    return python


def test_the_client_needs_only_httpx_and_pydantic() -> None:
    requires = metadata.distribution("bifrost-client").requires or []
    assert sorted(canonicalize_name(Requirement(text).name) for text in requires) == ["httpx", "pydantic"]


def test_the_client_alone_talks_to_a_real_api(serve, database, tmp_path: Path) -> None:
    world = build_world(database)
    url = serve({"BIFROST_DATABASE_URL": database.url})
    python = fresh_environment(tmp_path / "dcc-python")
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}
    done = subprocess.run(
        [
            python,
            "-c",
            CHILD,
            url,
            world.tokens["coordinator"],
            str(world.a.task_id),
            str(world.b.shot_id),
            json.dumps(SERVER_PACKAGES),
        ],
        cwd=tmp_path,  # not the repository: its packages must not be importable from the cwd
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["imported"] == [] and answer["findable"] == []
    assert answer["me"] == "coordinator"
    assert answer["refused"] == [404, "not_found"]
    version_id, number, comment = answer["version"]
    assert comment == "from a DCC"
    with UnitOfWork(database) as uow:
        assert uow.session.scalar(select(Version.number).where(Version.id == version_id)) == number
