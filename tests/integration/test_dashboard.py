"""The dashboard in a real browser: headless Chromium (Debian's package, driven by Selenium through
Debian's chromedriver, nothing downloaded) against a worker fed with users who go silent.

Outside CI the test skips when the browser is not installed; in CI (CI=true) it must run.
The screenshot is kept in $PYTEST_ARTIFACTS (default tests/artifacts/).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.devtools.feed import demo_feed
from stream.devtools.produce import produce_feed
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import read_topic
from stream.kafka.topics import ensure_topics

from .test_end_to_end import expected_counts
from .worker_process import wait_for_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY_MS = 86_400_000
TOKEN = "dashboard-test-token"
ARTIFACTS = Path(os.environ.get("PYTEST_ARTIFACTS") or Path(__file__).parents[1] / "artifacts")
HEADLESS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--window-size=1400,1500")


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        chromium = None
    if not (chromium and driver):
        reason = "needs Debian's chromium and chromium-driver and the selenium package (.ci/run installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in HEADLESS:
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"the dashboard did not show {what} within {timeout:.0f}s")


def test_dashboard_shows_clusters_alerts_and_a_profile(broker, settings_factory, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    settings = settings_factory(broker.bootstrap, api_token=TOKEN)
    events = list(demo_feed(12, 240, seed=5, silent_fraction=0.34, gap_ms=120 * DAY_MS // 240))
    ensure_topics(settings)
    with WorkerProcess(settings, tmp_path) as worker:
        produce_feed(settings, events)
        wait_for_counts(settings, expected_counts(events), worker)
        alerts = wait_until(
            lambda: [json.loads(v) for _, v in read_topic(settings, settings.topic_alerts) if v], "a churn alert", 120
        )
        alerted = {a["user_id"] for a in alerts if a["type"] == "churn_risk"}

        browser.get(f"http://{settings.web_host}:{settings.web_port}/dashboard/")
        token_form = wait_until(lambda: browser.find_element(By.ID, "auth").is_displayed(), "the token prompt", 20)
        assert token_form  # the worker requires a token, so the page asks for it before showing any data
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#auth-form button").click()

        def cluster_rows() -> list[str]:
            return [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#cluster-list li.cluster")]

        rows = wait_until(lambda: [r for r in cluster_rows() if "·" in r and "(no keywords yet)" not in r], "clusters")
        status, clusters = worker.http_get("/clusters")
        assert status == 200
        shown = int(browser.find_element(By.ID, "map").get_attribute("data-points"))
        assert shown == sum(1 for c in clusters["clusters"] if c["size"] > 0) >= 2
        labels = browser.find_element(By.ID, "map").text  # the SVG renderer writes the bubble labels as text
        keyword = next(c["keywords"][0] for c in clusters["clusters"] if c["keywords"])
        assert keyword in labels and any(keyword in r for r in rows)

        alert_items = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#alerts li.alert"), "an alert")
        user = alert_items[0].get_attribute("data-user")
        assert user in alerted and "churn_risk" in alert_items[0].text
        alert_items[0].click()  # opens that user's profile
        churn = wait_until(lambda: browser.find_element(By.ID, "profile").find_elements(By.ID, "profile-churn"),
                           "the profile")[0].text
        status, profile = worker.http_get(f"/profiles/{user}")
        assert status == 200
        assert f"score {profile['churn']['score']:.2f}" in churn and "alert open" in churn
        assert all(r["detail"] in churn for r in profile["churn"]["reasons"])
        rfm = browser.find_element(By.ID, "profile-rfm").text
        assert profile["consumption"]["rfm"]["segment"] in rfm
        wait_until(lambda: browser.find_element(By.ID, "kpi-profiles").text == str(len(expected_counts(events))),
                   "the profile count")

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1400, max(1500, int(height) + 40))
        shot = ARTIFACTS / "dashboard.png"
        assert browser.save_screenshot(str(shot))
        print(f"\ndashboard screenshot: {shot}")
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]]
        assert errors == []
