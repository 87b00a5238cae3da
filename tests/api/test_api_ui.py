"""The web interface without a browser: log-in failures counted by the failed-auth limit,
the session cookie's flags, no open redirect, log-out revokes the session, and pages show
only what the role table allows."""

from __future__ import annotations

import re

import pytest

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.scope import SYSTEM
from bifrost_core.users import passwords
from bifrost_core.users.models import ApiToken
from tests.support.world import World

PASSWORD = "correct horse battery"


@pytest.fixture
def with_passwords(world: World, database) -> World:
    with UnitOfWork(database) as uow:
        for username in ("supervisor", "client", "b_coordinator"):
            passwords.set_password(uow.session, actor=SYSTEM, username=username, password=PASSWORD)
        uow.commit()
    return world


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def log_in(client, username: str, password: str = PASSWORD, next: str = "/ui/", **extra):
    form = client.get("/ui/login")
    return client.post(
        "/ui/login",
        data={"csrf": _csrf(form.text), "username": username, "password": password, "next": next, **extra},
        follow_redirects=False,
    )


def test_the_session_cookie_is_httponly_samesite_and_secure_over_tls(make_client, with_passwords) -> None:
    client = make_client()
    answer = log_in(client, "supervisor")
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    cookie = answer.headers["set-cookie"].lower()
    assert (
        "httponly" in cookie and "samesite=lax" in cookie and "path=/ui" in cookie and "secure" not in cookie
    )
    tls = make_client()
    tls.base_url = tls.base_url.copy_with(scheme="https")
    assert "secure" in log_in(tls, "supervisor").headers["set-cookie"].lower()


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/ui/", "/api/x", "/ui/\\evil"])
def test_log_in_never_redirects_off_the_interface(make_client, with_passwords, target) -> None:
    answer = log_in(make_client(), "supervisor", next=target)
    assert answer.headers["location"] == "/ui/"


def test_wrong_passwords_are_one_message_and_count_toward_the_limit(make_client, with_passwords) -> None:
    client = make_client(api_auth_failures=3)
    for username in ("supervisor", "nobody", "client"):
        answer = log_in(client, username, "wrong password!")
        assert answer.status_code == 401
        assert "wrong username or password" in answer.text
    # The address has used its failures: even the right password waits for the next minute.
    refused = log_in(client, "supervisor")
    assert refused.status_code == 429 and "too many failed authentications" in refused.text


def test_a_user_without_a_password_cannot_log_in_with_one(make_client, world: World) -> None:
    answer = log_in(make_client(), "artist", "anything at all")
    assert answer.status_code == 401 and "wrong username or password" in answer.text


def test_log_out_revokes_the_session_token(make_client, with_passwords, database) -> None:
    client = make_client()
    log_in(client, "supervisor")
    page = client.get("/ui/")
    assert page.status_code == 200
    stolen = client.cookies.get("bifrost_session")
    assert (
        client.post("/ui/logout", data={"csrf": _csrf(page.text)}, follow_redirects=False).status_code == 303
    )
    with UnitOfWork(database) as uow:
        sessions = uow.session.query(ApiToken).filter_by(name="web session").all()
        assert sessions and all(token.revoked_at is not None for token in sessions)
    replay = make_client()
    replay.cookies.set("bifrost_session", stolen, path="/ui")
    assert replay.get("/ui/", follow_redirects=False).headers["location"].startswith("/ui/login")


def test_token_log_in_makes_a_session_that_dies_with_its_token(make_client, world: World) -> None:
    client = make_client()
    form = client.get("/ui/login")
    answer = client.post(
        "/ui/login", data={"csrf": _csrf(form.text), "token": world.tokens["artist"]}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert client.get("/ui/").status_code == 200
    api = make_client()
    api.delete(f"/tokens/{world.token_ids['artist']}", headers=world.headers("admin"))
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_pages_show_only_what_the_role_allows(make_client, with_passwords) -> None:
    world = with_passwords
    other = make_client()
    log_in(other, "b_coordinator")
    assert other.get(f"/ui/projects/{world.a.project_id}").status_code == 404
    assert other.get(f"/ui/versions/{world.a.version_id}").status_code == 404
    assert "PRJA" not in other.get("/ui/").text
    client = make_client()
    log_in(client, "client")
    version = client.get(f"/ui/versions/{world.a.version_id}")
    assert version.status_code == 200
    assert "nice" not in version.text  # the world's internal note
    assert "Approve" not in version.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ui/versions/abc", 422),
        ("/ui/versions/999999", 404),
        ("/ui/shots/{shot}?task=x", 422),
        ("/ui/shots/{shot}?no_such_filter=x", 422),
        ("/ui/nope", 404),
    ],
)
def test_bad_addresses_are_html_errors(make_client, with_passwords, path, status) -> None:
    client = make_client()
    log_in(client, "supervisor")
    answer = client.get(path.format(shot=with_passwords.a.shot_id))
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in answer.text


def test_bad_note_input_from_a_form_is_a_page_that_writes_nothing(make_client, with_passwords) -> None:
    world = with_passwords
    client = make_client()
    log_in(client, "supervisor")
    csrf = _csrf(client.get(f"/ui/versions/{world.a.version_id}").text)
    url = f"/ui/versions/{world.a.version_id}/notes"
    for form, message in [
        ({"body": "x", "frame": "ten"}, "not a whole number"),
        ({"body": "", "frame": ""}, "body"),
        ({"body": "x", "frame": "1001"}, "has no frames"),
    ]:
        answer = client.post(url, data={"csrf": csrf, **form}, follow_redirects=False)
        assert answer.status_code == 422 and message in answer.text, answer.text
    notes = client.get(f"/versions/{world.a.version_id}/notes", headers=world.headers("admin")).json()[
        "items"
    ]
    assert [n["body"] for n in notes] == ["nice"]


def test_every_page_needs_a_session(client, world: World) -> None:
    """Every /ui route but the log-in form and the static files: without a session a page
    sends to log-in, and a form post is refused before it is read."""
    checked = 0
    for route in client.app.routes:
        contexts = route.effective_route_contexts() if hasattr(route, "effective_route_contexts") else [route]
        for context in contexts:
            path = context.path
            if not path.startswith("/ui") or path == "/ui/login" or not getattr(context, "methods", None):
                continue
            url = re.sub(r"{\w+}", "1", path)
            for method in context.methods - {"HEAD"}:
                answer = client.request(method, url, headers=world.headers("admin"), follow_redirects=False)
                assert answer.status_code == 303, (method, url, answer.status_code)
                assert answer.headers["location"].startswith("/ui/login"), (method, url)
                checked += 1
    assert checked == 14
