"""The report in a real browser (headless Chromium): no errors, no network, every figure drawn.

Skipped where Chromium or Playwright is missing, unless OPTISCOPE_REQUIRE_BROWSER=1 (CI sets it).
Saves a full-page screenshot; with OPTISCOPE_UPDATE_DOCS=1 it also refreshes docs/report.png, the
one the README shows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from optiscope.diagnosis import CHALLENGES
from optiscope.records import schema
from optiscope.runner.report import write_report
from tests.test_report import EVIL, write_run

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "report.png"


def _unavailable(why: str) -> None:
    if os.environ.get("OPTISCOPE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"OPTISCOPE_REQUIRE_BROWSER=1 but {why}: install it or unset the variable")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install playwright)")
    if not CHROMIUM.exists():
        _unavailable(f"Chromium is not at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


class Page:
    """A page that keeps every console error, page error, dialog and non-local request."""

    def __init__(self, browser, path: Path) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page = browser.new_page(viewport={"width": 1200, "height": 900})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.on("request", self._request)
        self.page.on("dialog", self._dialog)
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def _request(self, request) -> None:
        if not request.url.startswith(("file://", "data:")):
            self.requests.append(request.url)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    from optiscope.runner.run import run_experiment
    from optiscope.training.loading import load_experiment

    # The recurrent experiment records every kind of data the report draws.
    out = tmp_path_factory.mktemp("rnn")
    run_experiment(load_experiment("rnn-long-delay", seed=0), out)
    return write_report(out)


def test_the_report_of_a_real_run_renders_cleanly(browser, real_report, tmp_path):
    shot = tmp_path / "report.png"
    view = Page(browser, real_report)
    page = view.page
    try:
        assert view.errors == []
        assert view.requests == []
        for sid in ["verdicts", "overview", *CHALLENGES]:
            assert page.locator(f"section#{sid}").is_visible(), sid
        svgs = page.locator("figure svg")
        assert svgs.count() == page.locator("svg").count() == 13
        for i in range(svgs.count()):
            box = svgs.nth(i).bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 100, (i, box)
        # The summary's links lead to the sections.
        page.locator('a[href="#cliffs"]').first.click()
        assert page.evaluate("location.hash") == "#cliffs"
        page.goto(real_report.resolve().as_uri())
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("OPTISCOPE_UPDATE_DOCS") == "1":
        DOCS_SCREENSHOT.write_bytes(shot.read_bytes())


def test_an_experiment_named_like_a_script_runs_nothing(browser, tmp_path):
    header = {schema.EXPERIMENT: EVIL, schema.DESCRIPTION: EVIL, schema.SEED: 0, schema.STEPS: 10}
    path = write_report(write_run(tmp_path, steps=10, full=False, header=header))
    view = Page(browser, path)
    try:
        assert view.dialogs == [] and view.errors == [] and view.requests == []
        assert view.page.locator("h1").inner_text() == f"optiscope report: {EVIL}"
        assert view.page.title() == f"optiscope report: {EVIL}"
    finally:
        view.page.close()
