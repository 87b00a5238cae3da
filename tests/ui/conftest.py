"""The web interface in a real browser: Debian's chromium driven by Playwright, against the
API app served by uvicorn on a free port.

Browser downloads are impossible here, so Playwright is pointed at the system Chromium
(`make browser` installs it). Mandatory under BIFROST_REQUIRE_BROWSER=1 (.ci/run sets it):
a missing browser or Playwright then fails; elsewhere it skips.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from bifrost_core.cache.backends import LocalCache
from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from tests.support.review import Review, build_review
from tests.support.services import free_port
from tests.support.world import World, build_world

CHROMIUM = os.environ.get("BIFROST_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("BIFROST_REQUIRE_BROWSER") == "1"


def _missing(reason: str) -> None:
    if REQUIRED:
        pytest.fail(
            f"the browser tests are mandatory here (BIFROST_REQUIRE_BROWSER=1): {reason}", pytrace=False
        )
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM} (make browser)")
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root in a container, where Chromium's sandbox cannot start.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        yield browser
        browser.close()


@pytest.fixture
def ui_world(database: Database, tmp_path: Path) -> tuple[World, Review]:
    world = build_world(database)
    return world, build_review(database, world, tmp_path / "store")


@pytest.fixture
def ui_server(bifrost_env: Path, database: Database, ui_world) -> Iterator[str]:
    """The app (API and /ui) served by uvicorn in a thread of this process."""
    import uvicorn

    app = create_app(load_settings(), database=database, cache=LocalCache())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        raise RuntimeError("the UI server did not start")
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def new_page(chromium_browser, ui_server, tmp_path: Path):
    """`new_page(width, height)`: a page in a fresh browser context (its own cookies)."""
    contexts = []

    def make(width: int = 1280, height: int = 800):
        # bypass_csp: Playwright evaluates the tests' wait conditions as strings, which the
        # pages' Content-Security-Policy (checked in tests/api/test_api_ui.py) forbids.
        context = chromium_browser.new_context(
            viewport={"width": width, "height": height}, base_url=ui_server, bypass_csp=True
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
