"""The web UI in a real browser: Chromium (Debian's) driven by Playwright against `up`.

Log in, see the jobs, Run now and watch the run appear and finish without a reload, open the
job and run pages, reschedule (an invalid then a valid expression), pause and resume, create
and revoke a key, on a laptop and a phone screen; with zero console errors.
Set GATEWAY_SCREENSHOTS=docs/screenshots to refresh the screenshots in the docs.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.procs import ROOT
from tests.e2e.procs import Proc
from tests.e2e.procs import clean_env
from tests.e2e.procs import free_port
from tests.e2e.procs import wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_TOKEN = "browser-admin-token-0123456789"
JOB = "cleanup-sessions"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`python -m gateway up` in a fresh directory; yields its base URL once the jobs are synced."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(
        PYTHONPATH=str(ROOT),
        GATEWAY_BIND=f"127.0.0.1:{port}",
        GATEWAY_APP_URL=base,
        GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    up = Proc("up", [sys.executable, "-m", "gateway", "up"], env, tmp_path)
    try:
        wait_until(lambda: _synced(up, base), 30, f"`up` on {base} with {JOB} synced")
        yield base
    except BaseException:
        print(up.report())
        raise
    finally:
        up.stop()


def _synced(up: Proc, base: str) -> bool:
    assert up.running(), f"`up` exited with {up.popen.returncode}:\n{up.report()}"
    try:
        r = requests.get(
            f"{base}/api/jobs/{JOB}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=2
        )
    except requests.ConnectionError:
        return False
    return r.status_code == 200


@pytest.fixture
def browser() -> Iterator[Any]:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install chromium; "
        ".ci/run does) to run the browser test"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Console:
    """Every console error and uncaught exception of the pages it watches."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Any) -> Any:
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("dialog", lambda d: d.accept())  # the confirm() before delete and revoke
        return page


def shoot(page: Any, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("GATEWAY_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_an_operator_runs_reschedules_pauses_and_manages_keys_in_chromium(
    server: str, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    console = Console()
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = console.watch(context.new_page())
    page.set_default_timeout(15_000)

    # Log in (a wrong key is a 401 page, which Chromium logs as an error: test_web_auth has it).
    page.goto(server + "/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Admin key").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()

    # The jobs: one row each, the demo job among them.
    row = page.locator(f'tbody tr[data-job="{JOB}"]')
    expect(row).to_be_visible()
    assert page.locator("tbody tr[data-job]").count() >= 4
    ticks_before = row.locator(".tick").count()

    # Run now; the run appears in the row's strip and turns green without a reload.
    row.get_by_role("button", name="Run now").click()
    expect(page.get_by_text(f"Queued a run of {JOB}.")).to_be_visible()
    expect(row.locator(".tick")).to_have_count(ticks_before + 1, timeout=15_000)
    expect(row.locator(".tick").last).to_have_class(re.compile(r"\bgood\b"), timeout=20_000)
    shoot(page, "jobs", tmp_path)

    # The run page: finished, with its summary.
    page.get_by_role("link", name="Open the run").click()
    expect(page.locator("[data-status]")).to_have_attribute(
        "data-status", "success", timeout=20_000
    )
    expect(page.get_by_role("heading", name="Summary")).to_be_visible()
    expect(page.locator("dd", has_text="manual")).to_be_visible()
    shoot(page, "run", tmp_path)

    # The job page: ten fire times; reschedule with a bad then a good expression.
    page.get_by_role("link", name=JOB).first.click()
    expect(page.locator("ol.times li")).to_have_count(10)
    schedule = page.get_by_label(re.compile(r"^Schedule"))
    schedule.fill("0 0 31 2 *")
    expect(page.locator("#schedule-preview")).to_contain_text("never occurs in February")
    page.get_by_role("button", name="Save changes").click()  # refused before it is sent
    expect(schedule).to_have_attribute("aria-invalid", "true")
    schedule.fill("*/10 * * * *")
    expect(page.locator("#schedule-preview")).to_contain_text("Every 10 minutes")
    expect(page.locator("#schedule-preview li")).to_have_count(5)
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text(f"Saved {JOB}.")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("*/10 * * * *")
    shoot(page, "job", tmp_path)

    # Pause and resume.
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_text(f"Paused {JOB}.")).to_be_visible()
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_text(f"Resumed {JOB}.")).to_be_visible()
    expect(page.locator("ol.times li")).to_have_count(10)

    # Keys: create (secret shown once), then revoke.
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Name").fill("browser-ci")
    page.get_by_label("Scope").select_option("invoke")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Secret").input_value()
    assert secret.startswith("cg_")
    ok = requests.post(f"{server}/crons/{JOB}", headers={"X-Cron-Token": secret}, timeout=10)
    assert ok.status_code == 200, ok.text
    shoot(page, "keys", tmp_path)
    page.locator('tr[data-key="browser-ci"]').get_by_role("button", name="Revoke").click()
    expect(page.locator('tr[data-key="browser-ci"]')).to_contain_text("revoked")
    assert secret not in page.content()
    gone = requests.post(f"{server}/crons/{JOB}", headers={"X-Cron-Token": secret}, timeout=10)
    assert gone.status_code == 401

    # Gateways: the one `up` started is active and beating.
    page.get_by_role("link", name="Gateways").click()
    expect(page.locator("tbody .badge.good")).to_have_text("active")
    shoot(page, "gateways", tmp_path)

    # A phone: the jobs table becomes cards, nothing wider than the screen.
    phone = console.watch(
        browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    )
    phone.context.add_cookies(context.cookies())
    phone.goto(server + "/")
    expect(phone.locator(f'tbody tr[data-job="{JOB}"]')).to_be_visible()
    widths = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] + 1, f"the phone page scrolls sideways: {widths}"
    shoot(phone, "jobs-phone", tmp_path)

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    assert console.errors == [], f"console errors: {console.errors}"
