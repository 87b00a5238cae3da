"""What a render chunk's start no longer repeats: its settings read once while nothing they
come from changed, the migrations' heads read once per process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bifrost_core.db import migrate
from tasks.common import current_settings


def test_settings_are_read_again_only_when_the_environment_or_dotenv_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BIFROST_HOME", str(tmp_path / "one"))
    first = current_settings()
    assert current_settings() is first  # nothing changed: the same object, not read again
    assert first.home == tmp_path / "one"

    monkeypatch.setenv("BIFROST_HOME", str(tmp_path / "two"))
    assert current_settings().home == tmp_path / "two"

    monkeypatch.delenv("BIFROST_HOME")
    (tmp_path / ".env").write_text(f"BIFROST_HOME={tmp_path / 'three'}\n")
    assert current_settings().home == tmp_path / "three"
    (tmp_path / ".env").write_text(f"BIFROST_HOME={tmp_path / 'four'}\n")
    os.utime(tmp_path / ".env", ns=(0, 10**18))  # a rewrite within the clock's step still counts
    assert current_settings().home == tmp_path / "four"

    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)  # another folder, no .env
    assert current_settings().home != tmp_path / "four"


def test_the_code_heads_are_the_migrations_heads() -> None:
    assert migrate.code_head_revisions() == migrate.head_revisions()
