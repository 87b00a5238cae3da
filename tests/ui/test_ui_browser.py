"""The web interface in headless Chromium: log in, browse to a shot, play the proxy, note a
frame, approve, what a client sees, a phone's screen, and forms without their CSRF token.
A screenshot of every page visited is saved in the test's tmp folder (screens/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bifrost_core.db.database import Database
from bifrost_core.reviews.models import Note
from bifrost_core.tasks.models import Task
from bifrost_core.versions.models import Version
from tests.support.review import FIRST, PASSWORD

pytestmark = pytest.mark.slow


class Shots:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def __call__(self, page, name: str) -> None:
        self.count += 1
        page.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"), full_page=True)


@pytest.fixture
def shoot(tmp_path: Path) -> Shots:
    return Shots(tmp_path / "screens")


def log_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/ui/")
    assert "/ui/login" in page.url
    page.fill("#password-login input[name=username]", username)
    page.fill("#password-login input[name=password]", password)
    page.click("#password-login button[type=submit]")


def wait_playing(page, at_least: float = 0.3) -> float:
    page.evaluate("document.getElementById('video').play()")
    page.wait_for_function(f"document.getElementById('video').currentTime > {at_least}")
    return page.evaluate("document.getElementById('video').currentTime")


def shown_frame(page) -> int:
    return int(page.text_content("#frame-number"))


def test_a_supervisor_browses_plays_notes_and_approves(new_page, ui_world, database: Database, shoot):
    _world, review = ui_world
    page = new_page()
    page.goto("/ui/")
    shoot(page, "login")
    log_in(page, "supervisor")
    page.wait_for_url("**/ui/")
    shoot(page, "projects")
    page.click("text=PRJA")
    shoot(page, "project")
    page.click("a:text-is('sq010')")
    shoot(page, "sequence")
    page.click("a:text-is('sh010')")
    page.wait_for_url(f"**/ui/shots/{review.shot_id}")
    # The version's thumbnail is served and decoded.
    page.wait_for_function("[...document.images].some(img => img.complete && img.naturalWidth > 0)")
    shoot(page, "shot")
    page.select_option("select[name=status]", "approved")
    page.click("form.filters button")
    assert "No version matches the filters" in page.text_content("ul.versions")
    page.goto(f"/ui/shots/{review.shot_id}")
    page.click(f"a[href='/ui/versions/{review.version_id}']")
    page.wait_for_url(f"**/ui/versions/{review.version_id}")

    # The proxy plays: the video's clock advances.
    assert wait_playing(page) > 0.3
    page.evaluate("document.getElementById('video').pause()")
    shoot(page, "player")

    # Frame-accurate stepping: to the first frame, then nine frames on.
    page.evaluate("(() => { const v = document.getElementById('video'); v.pause(); v.currentTime = 0; })()")
    page.wait_for_function(f"document.getElementById('frame-number').textContent === '{FIRST}'")
    for _ in range(9):
        before = shown_frame(page)
        page.click("[data-step='1']")
        page.wait_for_function(f"document.getElementById('frame-number').textContent === '{before + 1}'")
    assert shown_frame(page) == FIRST + 9
    page.click("[data-step='-1']")
    page.wait_for_function(f"document.getElementById('frame-number').textContent === '{FIRST + 8}'")
    assert page.input_value("#note-frame") == str(FIRST + 8)

    page.fill("#note-form textarea[name=body]", "the flicker starts here")
    page.click("#note-form button[type=submit]")
    page.wait_for_url(f"**/ui/versions/{review.version_id}?frame={FIRST + 8}")
    assert "the flicker starts here" in page.text_content(".note-list")
    shoot(page, "note-added")
    with database.session() as session:
        note = session.scalars(select(Note).where(Note.body == "the flicker starts here")).one()
        assert (note.version_id, note.frame_in, note.frame_out) == (review.version_id, FIRST + 8, FIRST + 8)

    page.click("button.approve")
    page.wait_for_url(f"**/ui/versions/{review.version_id}")
    assert page.text_content("#version-status") == "approved"
    assert page.text_content("#task-status") == "approved"
    shoot(page, "approved")
    with database.session() as session:
        assert session.get(Version, review.version_id).status == "approved"
        assert session.get(Task, review.task_id).status == "approved"

    page.goto("/ui/tasks/mine")
    shoot(page, "my-tasks")
    page.goto(f"/ui/playlists/{review.internal_playlist}")
    assert wait_playing(page, 0.2) > 0.2
    first = page.text_content("#now-playing")
    shoot(page, "playlist")
    # In order: when the first ends, the next version with a proxy plays (the one without is listed only).
    page.wait_for_function(
        f"document.getElementById('now-playing').textContent !== {first!r}", timeout=30_000
    )
    assert page.text_content("#now-playing").endswith("v003")
    assert page.get_attribute("[data-index='2']", "class") == "playing"
    assert wait_playing(page, 0.2) > 0.2
    page.click("text=Log out")
    page.wait_for_url("**/ui/login")
    page.goto(f"/ui/versions/{review.version_id}")
    assert "/ui/login" in page.url


def test_a_client_sees_only_the_shared_playlist(new_page, ui_world, shoot):
    _world, review = ui_world
    page = new_page()
    log_in(page, "client")
    page.wait_for_url("**/ui/")
    page.click("text=PRJA")
    playlists = page.locator("section:has(h2:text-is('Playlists')) li").all_text_contents()
    assert len(playlists) == 1 and "client review" in playlists[0]
    shoot(page, "client-project")
    response = page.goto(f"/ui/playlists/{review.internal_playlist}")
    assert response.status == 404
    shoot(page, "client-internal-playlist")
    page.goto(f"/ui/playlists/{review.client_playlist}")
    assert wait_playing(page, 0.2) > 0.2
    assert page.text_content("#now-playing").startswith("sq010/sh010")
    shoot(page, "client-playlist")
    # A client reads no studio-internal note, and has no approve button.
    page.goto(f"/ui/versions/{review.version_id}")
    assert page.locator("button.approve").count() == 0
    shoot(page, "client-version")


def test_the_player_fits_a_phone(new_page, ui_world, shoot):
    _, review = ui_world
    page = new_page(390, 844)
    log_in(page, "supervisor")
    page.wait_for_url("**/ui/")
    page.goto(f"/ui/versions/{review.version_id}")
    page.wait_for_function("document.getElementById('video').readyState >= 1")
    widths = page.evaluate(
        "({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,"
        " video: document.getElementById('video').getBoundingClientRect().right})"
    )
    assert widths["scroll"] <= widths["client"] == 390, widths
    assert 0 < widths["video"] <= 390, widths
    assert page.is_visible("button.approve") and page.is_visible("#note-form")
    shoot(page, "phone-player")
    page.goto(f"/ui/shots/{review.shot_id}")
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    shoot(page, "phone-shot")


def test_forms_without_the_csrf_token_are_refused(new_page, ui_world, database: Database, shoot):
    _world, review = ui_world
    page = new_page()
    log_in(page, "supervisor")
    page.wait_for_url("**/ui/")
    # The session cookie goes with these requests; only the token is missing or wrong.
    for form in (
        {"body": "forged", "frame": str(FIRST)},
        {"body": "forged", "frame": str(FIRST), "csrf": "x" * 64},
    ):
        answer = page.request.post(f"/ui/versions/{review.version_id}/notes", form=form, max_redirects=0)
        assert answer.status == 403 and "CSRF" in answer.text()
    answer = page.request.post(f"/ui/versions/{review.version_id}/approve", form={}, max_redirects=0)
    assert answer.status == 403
    answer = page.request.post("/ui/logout", form={}, max_redirects=0)
    assert answer.status == 403
    with database.session() as session:
        assert session.scalars(select(Note).where(Note.body == "forged")).first() is None
        assert session.get(Version, review.version_id).status == "pending_review"
    # The log-in form's own token too.
    other = new_page()
    answer = other.request.post(
        "/ui/login", form={"username": "supervisor", "password": PASSWORD}, max_redirects=0
    )
    assert answer.status == 403
    page.goto(f"/ui/versions/{review.version_id}")
    shoot(page, "still-logged-in")


def test_token_log_in_and_a_wrong_password(new_page, ui_world, shoot):
    world, _ = ui_world
    page = new_page()
    log_in(page, "supervisor", "not the password")
    assert page.text_content("[role=alert]") == "wrong username or password"
    shoot(page, "wrong-password")
    page.click("text=Log in with an API token")
    page.fill("#token-login input[name=token]", world.tokens["artist"])
    page.click("#token-login button[type=submit]")
    page.wait_for_url("**/ui/")
    assert "Log out artist" in page.text_content("header")
    shoot(page, "token-login")
