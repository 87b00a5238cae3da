"""A project's storage tier roots are an admin's decision, inside the roots the deployment
allows (issue 10, defect 5): a coordinator could point a tier at any folder, such as a
scratch folder of unrelated files, which `storage gc` then swept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bifrost_core.config import load_settings
from tests.support.world import World


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    studio = tmp_path / "studio"
    scratch = tmp_path / "scratch"
    for folder in (studio / "show1", scratch, tmp_path / "studio-other"):
        folder.mkdir(parents=True)
    (scratch / "unrelated.txt").write_text("not Bifrost's")
    (studio / "escape").symlink_to(scratch)
    return {"studio": studio, "scratch": scratch, "tmp": tmp_path}


@pytest.fixture
def tiers_client(make_client, roots: dict[str, Path]):
    return make_client(storage_allowed_roots=[str(roots["studio"]), "s3://studio-bucket"])


def _patch(client, world: World, who: str, tiers: dict[str, str]):
    url = f"/projects/{world.a.project_id}"
    return client.patch(url, json={"storage_tiers": tiers}, headers=world.headers(who))


def _tiers(client, world: World) -> dict[str, str]:
    project = client.get(f"/projects/{world.a.project_id}", headers=world.headers("admin")).json()
    return project["storage_tiers"]


def test_a_coordinator_cannot_set_tier_roots(tiers_client, world: World, roots) -> None:
    for root in (str(roots["scratch"]), str(roots["studio"] / "show1")):
        refused = _patch(tiers_client, world, "coordinator", {"hot": root})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["message"] == "only an admin can change a project's storage tiers"
    assert _tiers(tiers_client, world) == {}
    assert (roots["scratch"] / "unrelated.txt").exists()
    # Other settings, and the tiers as they are, stay a coordinator's to send.
    assert _patch(tiers_client, world, "coordinator", {}).status_code == 200
    url = f"/projects/{world.a.project_id}"
    renamed = tiers_client.patch(url, json={"name": "x"}, headers=world.headers("coordinator"))
    assert renamed.status_code == 200


REFUSED = [
    ("{scratch}", "is not inside a root this deployment allows"),
    ("{tmp}/studio-other", "is not inside a root"),  # a prefix of the name is not a folder above
    ("{studio}/escape", "is not inside a root"),  # a symlink out of an allowed root
    ("{studio}/show1/../../scratch", "'..' path segment"),
    ("studio/show1", "is not an absolute path or a URL"),
    ("s3://studio-bucket-2/x", "is not inside a root"),
    ("s3://studio-bucket/../other", "'..' path segment"),
    ("s3://studio-bucket//x", "empty"),
]


def test_an_admin_sets_only_roots_inside_the_allowed_ones(tiers_client, world: World, roots) -> None:
    for template, message in REFUSED:
        root = template.format(**{name: str(path) for name, path in roots.items()})
        refused = _patch(tiers_client, world, "admin", {"fast": root})
        assert refused.status_code == 422, (root, refused.text)
        error = refused.json()["error"]
        assert message in error["message"] and error["message"].startswith("storage tier fast: "), root
        if "inside a root" in message:
            # The message names the allowed roots, so the admin knows what to set.
            assert str(roots["studio"]) in error["message"]
            assert "BIFROST_STORAGE_ALLOWED_ROOTS" in error["message"]
    assert _tiers(tiers_client, world) == {}


def test_an_admin_sets_roots_inside_the_allowed_ones(tiers_client, world: World, roots) -> None:
    studio = roots["studio"]
    answer = _patch(
        tiers_client,
        world,
        "admin",
        {"hot": f"{studio}/show1/", "archive": "S3://studio-bucket/show1", "cold": "s3://studio-bucket"},
    )
    assert answer.status_code == 200, answer.text
    # Stored in normal form: what was checked is what is used.
    expected = {
        "hot": os.path.realpath(studio / "show1"),
        "archive": "s3://studio-bucket/show1",
        "cold": "s3://studio-bucket",
    }
    assert answer.json()["storage_tiers"] == expected == _tiers(tiers_client, world)


def test_creating_a_project_checks_its_roots(tiers_client, world: World, roots) -> None:
    admin = world.headers("admin")
    outside = {"code": "OUT", "name": "out", "storage_tiers": {"hot": str(roots["scratch"])}}
    assert tiers_client.post("/projects", json=outside, headers=admin).status_code == 422
    inside = {"code": "IN", "name": "in", "storage_tiers": {"hot": str(roots["studio"] / "show1")}}
    assert tiers_client.post("/projects", json=inside, headers=admin).status_code == 201
    again = {**inside, "code": "IN2"}
    assert tiers_client.post("/projects", json=again, headers=world.headers("coordinator")).status_code == 403


def test_tier_names_are_codes(tiers_client, world: World, roots) -> None:
    refused = _patch(tiers_client, world, "admin", {"../hot": str(roots["studio"])})
    assert refused.status_code == 422
    assert "storage_tiers" in refused.json()["error"]["message"]


def test_by_default_the_studio_roots_and_the_home_storage_are_allowed(client, world: World, roots) -> None:
    home_storage = load_settings().home / "storage"
    assert _patch(client, world, "admin", {"hot": str(home_storage / "show1")}).status_code == 200
    assert _patch(client, world, "admin", {"hot": str(roots["studio"])}).status_code == 422
