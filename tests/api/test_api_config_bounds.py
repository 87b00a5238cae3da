"""Project settings that hold templates or patterns cannot stall or blow up the server
(issue 10, defect 5): each is refused when set, or bounded when used.

CASES has cases for every key of bifrost_core.projects.schemas.CONFIG_CHECKS (a new key
without cases fails `test_every_config_key_has_cases`): format widths and precisions that
would build gigabyte strings, rendered paths past what a filesystem takes, and regular
expressions that backtrack catastrophically on a 36-character name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from bifrost_core.errors import InvalidInput
from bifrost_core.ingest.planning import plan_ingest
from bifrost_core.media.probe import Probe
from bifrost_core.media.render import proxy_size
from bifrost_core.media.settings import MAX_HEIGHT, review_settings
from bifrost_core.projects.schemas import CONFIG_CHECKS
from bifrost_core.storage.errors import PathTemplateError
from bifrost_core.storage.naming import MAX_PATH, NamingRules
from bifrost_core.storage.paths import MAX_FORMAT_WIDTH, MAX_PATH_BYTES, PathTemplate
from tests.support.world import World

# The file name: 36 characters on which `(x+x+)+y` backtracks for minutes in `re`.
LONG_NAME = "x" * 36


@dataclass(frozen=True)
class Case:
    name: str
    value: Any
    refused: str | None = None  # the message, when setting it is a 422
    # When it is accepted: what using it does, given the project as the API answers it.
    then: Callable[[dict[str, Any], Path, Database], None] | None = None


def _plans_promptly(project: dict[str, Any], tmp_path: Path, database: Database) -> None:
    """A dry-run ingest of one file with a long name under the rule returns (unmatched)."""
    folder = tmp_path / "delivery" / LONG_NAME / "sh010" / "comp"
    folder.mkdir(parents=True)
    (folder / f"{LONG_NAME}{LONG_NAME}.exr").write_bytes(b"x")
    plan = plan_ingest(
        database, load_settings(), project=project["code"], source=str(tmp_path / "delivery"), tier="hot"
    )
    assert plan.versions == []
    assert len(plan.unmatched) == 1


def _long_paths_match_nothing(project: dict[str, Any], _tmp_path: Path, _database: Database) -> None:
    rules = NamingRules(project["config"]["naming_rules"])
    assert rules.match("sq/sh/comp/" + "x" * MAX_PATH) is None
    assert rules.match(f"{LONG_NAME}y/sh010/comp/a.exr") is not None


def _refused_when_rendered(project: dict[str, Any], _tmp_path: Path, _database: Database) -> None:
    template = PathTemplate(project["config"]["path_templates"]["shot"])
    values = {"project": "P", "shot": "s" * 64, "name": "n", "ext": "exr", "version": 1, "frame": 1}
    with pytest.raises(PathTemplateError, match=f"the limit is {MAX_PATH_BYTES}") as refused:
        template.format(values)
    assert isinstance(refused.value, InvalidInput)  # a 422, and exit code 5 in the CLI


def _proxy_never_taller_than_its_source(
    project: dict[str, Any], _tmp_path: Path, _database: Database
) -> None:
    height = review_settings(project["config"]).proxy_height
    assert height == MAX_HEIGHT
    source = Probe(reader="ffprobe", codec="png", width=1920, height=1080, frames=1)
    assert proxy_size(source, height) == (1920, 1080)


BACKTRACKING = "(x+x+)+y"
CASES: dict[str, list[Case]] = {
    "naming_rules": [
        Case(
            "backtracking regex",
            [{"regex": rf"(?P<sequence>{BACKTRACKING})/(?P<shot>\w+)/(?P<task>\w+)/.*"}],
            then=_plans_promptly,
        ),
        Case(
            "backtracking field pattern in a template",
            [f"{{sequence:{BACKTRACKING}}}/{{shot}}/{{task}}/*"],
            then=_plans_promptly,
        ),
        Case(
            "backtracking regex, longer paths",
            [{"regex": rf"(?P<sequence>{BACKTRACKING})/(?P<shot>\w+)/(?P<task>\w+)/.*"}],
            then=_long_paths_match_nothing,
        ),
        Case("backtracking as a bare rule", [BACKTRACKING], refused="needs {sequence} and {shot}"),
        Case(
            "backreference",
            [{"regex": r"(?P<sequence>x+)\1/(?P<shot>\w+)/(?P<task>\w+)"}],
            refused="matched in linear time",
        ),
        Case(
            "lookahead",
            [{"regex": r"(?P<sequence>(?=x)x+)/(?P<shot>\w+)/(?P<task>\w+)"}],
            refused="matched in linear time",
        ),
        Case(
            "repetition blow-up",
            [{"regex": r"(?P<sequence>((x{100}){100}){100})/(?P<shot>\w+)/(?P<task>\w+)"}],
            refused="invalid repetition size",
        ),
        Case(
            "program blow-up",
            [{"regex": "(?P<sequence>" + "[a-z]{1000}" * 100 + r")/(?P<shot>\w+)/(?P<task>\w+)"}],
            refused="too large",
        ),
    ],
    "path_templates": [
        Case(
            "width blow-up",
            {"shot": "{project}/{shot}/v{version:0999999999d}/{name}.{ext}"},
            refused=f"is above {MAX_FORMAT_WIDTH}",
        ),
        Case("precision blow-up", {"asset": "{project}/{asset}/{name:.999999999}"}, refused="is above"),
        Case("padded blow-up", {"asset": "{project}/{asset:x^99999999}/{name}"}, refused="is above"),
        Case("name blow-up", {"shot": "{project}/" + "n" * 300 + "/{name}"}, refused="the limit is 255"),
        Case(
            "output blow-up",
            {"shot": "{project}/" + "{shot}/" * 70 + "{name}.{ext}"},
            then=_refused_when_rendered,
        ),
    ],
    "review": [
        Case("proxy height blow-up", {"proxy_height": 10**9}, refused="review.proxy_height"),
        Case("odd proxy height", {"proxy_height": 721}, refused="multiple of 2"),
        Case("unknown key", {"proxy_width": 10}, refused="review.proxy_width"),
        Case("largest proxy height", {"proxy_height": MAX_HEIGHT}, then=_proxy_never_taller_than_its_source),
    ],
}


def test_every_config_key_has_cases() -> None:
    assert set(CASES) == set(CONFIG_CHECKS)
    for key, cases in CASES.items():
        assert any(c.refused for c in cases) and any(c.then for c in cases), key


@pytest.mark.timeout(120, method="thread")
@pytest.mark.parametrize("key", sorted(CASES))
def test_config_is_refused_or_bounded(
    client, world: World, database: Database, tmp_path: Path, key: str
) -> None:
    url, headers = f"/projects/{world.a.project_id}", world.headers("coordinator")
    for number, case in enumerate(CASES[key]):
        before = client.get(url, headers=headers).json()
        answer = client.patch(url, json={"config": {key: case.value}}, headers=headers)
        if case.refused:
            assert answer.status_code == 422, (case.name, answer.text)
            message = answer.json()["error"]["message"]
            assert message.startswith("body.config: config: "), (case.name, message)
            assert case.refused in message, (case.name, message)
            assert client.get(url, headers=headers).json() == before, case.name
        else:
            assert answer.status_code == 200, (case.name, answer.text)
            assert case.then is not None
            case.then(answer.json(), tmp_path / str(number), database)
