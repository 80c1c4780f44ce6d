"""Browser tests: a real ``runyard serve`` in a subprocess and Debian's Chromium driven by
Playwright. Skipped, saying why, when either is missing.

Set ``RUNYARD_UI_SCREENSHOTS`` to a folder (e.g. ``docs``) to save a screenshot of each
page there as ``ui-<page>.png``.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

CHROMIUM = pathlib.Path("/usr/bin/chromium")
PROJECT = pathlib.Path(__file__).resolve().parent / "project"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def skip_without_a_browser() -> None:
    """Skip, saying why, when Chromium or Playwright is missing (called by each test
    module at import, where a module-level skip is allowed)."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing; install Debian's chromium (apt-get install -y chromium)",
            allow_module_level=True,
        )
    pytest.importorskip(
        "playwright.sync_api", reason="playwright is in the test extras (pip install -e '.[test]')"
    )


class Server:
    """``runyard serve`` on a fresh home, with a copy of the test project registered."""

    def __init__(self, root: pathlib.Path, *, auth: bool) -> None:
        self.root = root
        self.project = root / "project"
        shutil.copytree(PROJECT, self.project)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
        self.env["RUNYARD_HOME"] = str(root / "home")
        self.cli("register", str(self.project / "waves.py"))
        self.token = ""
        if auth:
            made = self.cli("token", "create", "--name", "e2e", "--scope", "write")
            self.token = re.search(r"ry_\S+", made).group(0)  # type: ignore[union-attr]
        self.log = root / "serve.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runyard", "serve", "--port", "0", "--slots", "2"]
            + ([] if auth else ["--no-auth"]),
            env=self.env,
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not (found := re.search(r"REST API on (http://\S+)/api/v1", self.log.read_text())):
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "runyard serve did not start"
            time.sleep(0.05)
        self.url = found.group(1)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.api = httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "runyard", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self) -> None:
        self.api.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    made = Server(tmp_path_factory.mktemp("serve"), auth=False)
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh browser context's page; fails the test on a script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.set_default_timeout(20_000)
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"


def screenshot(page: object, name: str) -> None:
    """Save the page as ``ui-<name>.png`` in ``$RUNYARD_UI_SCREENSHOTS``, when it is set."""
    folder = os.environ.get("RUNYARD_UI_SCREENSHOTS")
    if folder:
        pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(pathlib.Path(folder) / f"ui-{name}.png"), full_page=True)  # type: ignore[attr-defined]
