"""Naming rules: templates and regular expressions mapping paths to shot/asset, task, variant."""

from __future__ import annotations

from pathlib import Path

import pytest

from bifrost_core.storage.errors import NamingRuleError
from bifrost_core.storage.naming import NamingRules
from bifrost_core.storage.scan import scan


def test_template_maps_a_path_to_shot_task_and_default_variant() -> None:
    rules = NamingRules(["{sequence}/{shot}/{task}/{name}.{frame}.{ext}"])
    m = rules.match("sq010/sh010/comp/sh010_comp.1001.exr")
    assert m is not None
    assert (m.entity, m.sequence, m.shot, m.asset, m.task, m.variant) == (
        "shot",
        "sq010",
        "sh010",
        None,
        "comp",
        "main",
    )
    assert (m.fields["name"], m.fields["frame"], m.fields["ext"]) == ("sh010_comp", "1001", "exr")
    assert m.rule == 1


def test_first_matching_rule_wins_and_defaults_fill_in() -> None:
    rules = NamingRules(
        [
            {
                "template": "**/plates/{sequence}_{shot}_{variant}.{frame}.{ext}",
                "defaults": {"task": "plate"},
            },
            {"template": "assets/{asset}/{task}/*.{ext}"},
            {
                "regex": r"(?P<sequence>SQ\d+)/(?P<shot>SH\d+)/.*",
                "defaults": {"task": "misc", "variant": "vendor"},
            },
        ]
    )
    plate = rules.match("VENDOR_2024_05/incoming/plates/sq010_sh020_bg01.1001.exr")
    assert plate is not None
    assert (plate.rule, plate.sequence, plate.shot, plate.task, plate.variant) == (
        1,
        "sq010",
        "sh020",
        "plate",
        "bg01",
    )

    asset = rules.match("assets/hero-car/model/anything goes.abc")
    assert asset is not None
    assert (asset.rule, asset.entity, asset.asset, asset.task, asset.shot) == (
        2,
        "asset",
        "hero-car",
        "model",
        None,
    )

    other = rules.match("SQ01/SH0100/notes/readme.txt")
    assert other is not None
    assert (other.rule, other.sequence, other.shot, other.task, other.variant) == (
        3,
        "SQ01",
        "SH0100",
        "misc",
        "vendor",
    )

    assert rules.match("random/file.txt") is None


def test_field_with_its_own_pattern_and_episode() -> None:
    rules = NamingRules([r"{episode:ep\d{2}}/{sequence}/{shot:sh\d{3}}/{task}/*"])
    m = rules.match("ep01/sq1/sh010/anim/take.mov")
    assert m is not None and (m.episode, m.shot) == ("ep01", "sh010")
    assert rules.match("ep01/sq1/shot10/anim/take.mov") is None


def test_values_that_are_not_codes_leave_the_path_unmatched() -> None:
    rules = NamingRules([{"regex": r"(?P<sequence>[^/]+)/(?P<shot>[^/]+)/(?P<task>[^/]+)/.+"}])
    assert rules.match("sq 010/sh010/comp/a.exr") is None  # a space is not allowed in a code
    assert rules.match("sq010/sh010/comp/a.exr") is not None


def test_scan_items_matched_and_unmatched(tmp_path: Path) -> None:
    for rel in ["sq010/sh010/plate/plate.1001.exr", "sq010/sh010/plate/plate.1002.exr", "stray/notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    report = NamingRules(["{sequence}/{shot}/{task}/{name}.{frame}.{ext}"]).match_items(scan(tmp_path).items)
    assert [(item.rel, m.shot, m.task) for item, m in report.matched] == [
        ("sq010/sh010/plate/plate.1001-1002#.exr", "sh010", "plate")
    ]
    assert [item.rel for item in report.unmatched] == ["stray/notes.txt"]


def test_no_rules_match_nothing() -> None:
    assert NamingRules([]).match("sq010/sh010/comp/a.exr") is None


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (["{sequence}/{shot}/{colour}/x"], r"naming rule 1 .*unknown field colour"),
        (["{sequence}/{shot}/x"], r"needs a \{task\} field or a default task"),
        (["{asset}/{shot}/{task}"], "either an asset or a sequence and shot"),
        (["{task}/x"], r"needs \{sequence\} and \{shot\}, or \{asset\}"),
        (["{sequence}/{sequence}/{task}"], r"field \{sequence\} appears twice"),
        (["{sequence}/{shot}/{task"], "unclosed"),
        (["{sequence}/{shot}}/{task}"], "unmatched"),
        (["{Sequence}/{shot}/{task}"], "bad field"),
        ([{"regex": "(?P<sequence>[a-z+"}], "invalid regular expression"),
        ([{"regex": "(?P<seq>.+)/(?P<shot>.+)/(?P<task>.+)"}], "unknown field seq"),
        (
            [{"template": "{asset}/x", "defaults": {"task": "bad code!"}}],
            "default task='bad code!' is not a valid code",
        ),
        ([{"template": "{asset}/{task}", "regex": "x"}], "exactly one of 'template' or 'regex'"),
        ([{"template": "{asset}/{task}", "colour": "red"}], "exactly one of"),
        ([42], "expected a string or a mapping"),
        ("{asset}/{task}", "must be a list"),
        ([""], "non-empty"),
    ],
)
def test_bad_rules_are_refused_up_front(rules: object, message: str) -> None:
    with pytest.raises(NamingRuleError, match=message):
        NamingRules(rules)  # type: ignore[arg-type]


def test_second_rule_is_named_in_the_error() -> None:
    with pytest.raises(NamingRuleError, match=r"naming rule 2 \('\{shot\}'\)"):
        NamingRules(["{asset}/{task}/x", "{shot}"])
