"""`bifrost review media`: review media of versions on demand, and its refusals."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bifrost_core.versions.models import Version
from cli.errors import EXIT_INVALID, EXIT_NOT_FOUND, EXIT_USAGE
from tests.support.media import png_frames

pytestmark = pytest.mark.usefixtures("ffmpeg_installed")


def test_review_media_on_demand_and_bad_input(production, peek, row_counts, tmp_path) -> None:
    bifrost = production
    frames = png_frames(tmp_path / "comp", 4, size=(320, 180))
    bifrost("publish", *frames, "-p", "DEMO", "--shot", "SQ010/SH010", "--task", "comp")
    (tmp_path / "notes.txt").write_text("not media")
    bifrost("publish", tmp_path / "notes.txt", "-p", "DEMO", "--shot", "SQ010/SH010", "--task", "notes")
    with peek() as session:
        comp, notes = session.scalars(select(Version.id).order_by(Version.id)).all()

    before = row_counts()
    for args, code, message in [
        ((999999,), EXIT_NOT_FOUND, "error: version 999999 not found"),
        (
            (comp, "--height", 7),
            EXIT_INVALID,
            "error: proxy height must be an even number from 64 to 4320, not 7",
        ),
        ((comp, "--height", 8000), EXIT_INVALID, "not 8000"),
    ]:
        refused = bifrost("review", "media", *args, code=code)
        assert refused.stderr.strip() == message or message in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert row_counts() == before

    made = bifrost("review", "media", comp, "--height", 90)
    assert "| versions made | 1 |" in made.stdout
    again = bifrost("review", "media", comp, "--json")
    assert '"created": false' in again.stdout

    failed = bifrost("review", "media", notes, code=EXIT_INVALID)
    assert failed.stderr.strip().startswith(f"error: version {notes} has no frames or movie to review")
    with peek() as session:
        version = session.get(Version, comp)
        proxy = next(rep for rep in version.representations if rep.name == "review-proxy")
        assert (proxy.meta["width"], proxy.meta["height"], proxy.meta["frames"]) == (160, 90, 4)
        assert "has no frames or movie" in session.get(Version, notes).media_error


def test_versions_of_two_projects_are_refused(production, tmp_path) -> None:
    bifrost = production
    bifrost("project", "create", "OTHER")
    bifrost("sequence", "create", "OTHER", "SQ010")
    bifrost("shot", "create", "OTHER", "SQ010", "SH010")
    frames = png_frames(tmp_path / "comp", 2, size=(64, 36))
    for project in ("DEMO", "OTHER"):
        bifrost("publish", *frames, "-p", project, "--shot", "SQ010/SH010", "--task", "comp")
    refused = bifrost("review", "media", 1, 2, code=EXIT_USAGE)
    assert "several projects" in refused.stderr
