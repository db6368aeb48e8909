"""The dashboard in a real browser: headless Chromium (Debian's package, driven by Selenium through
Debian's chromedriver, nothing downloaded) against a worker fed with users who go silent.

Outside CI the test skips when the browser is not installed; in CI (CI=true) it must run.
The screenshot is kept in $PYTEST_ARTIFACTS (default tests/artifacts/).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream.core.events import parse_ts
from stream.devtools.feed import FeedEvent, demo_feed
from stream.devtools.produce import produce_feed
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import read_topic
from stream.kafka.topics import ensure_topics

from .test_end_to_end import expected_counts
from .worker_process import wait_for_counts, wait_for_watermark

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
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except StaleElementReferenceException:  # the page re-rendered between finding and reading: look again
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"the dashboard did not show {what} within {timeout:.0f}s")


def scrape(settings, token: str | None) -> tuple[int, dict[tuple[str, tuple], float]]:  # noqa: ANN001
    """Status and samples of GET /metrics: {(sample name, sorted labels): value}."""
    request = urllib.request.Request(f"http://{settings.web_host}:{settings.web_port}/metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    return 200, {(s.name, tuple(sorted(s.labels.items()))): s.value
                 for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in samples.items() if n == name and labels.items() <= dict(lab).items())


def check_metrics(settings, events: list, users: int) -> None:  # noqa: ANN001
    assert scrape(settings, None)[0] == 401  # same token as the API

    def alerts_agree() -> dict | None:
        """Counters and topics agree once the last alerts are out (ticks run asynchronously)."""
        _, samples = scrape(settings, TOKEN)
        published = [json.loads(v)["type"] for _, v in read_topic(settings, settings.topic_alerts) if v]
        counted = [total(samples, "stream_churn_alerts_total", type=t) for t in ("churn_risk", "recovered")]
        agree = counted == [published.count("churn_risk"), published.count("recovered")] and counted[0] >= 1
        return samples if agree and total(samples, "stream_profiles") == users else None

    samples = wait_until(alerts_agree, "alert counters equal to the churn-alerts topic and every profile counted", 40)
    per_topic: dict[str, int] = {}
    for fe in events:
        topic = settings.topic_of_kind[fe.kind]
        per_topic[topic] = per_topic.get(topic, 0) + 1
    for topic, n in per_topic.items():
        assert total(samples, "stream_events_total", topic=topic, outcome="accepted") == n, topic
    assert total(samples, "stream_events_total", outcome="dead_letter") == 0 == total(samples, "stream_dead_letters_total")
    assert total(samples, "stream_events_total", topic=settings.topic_profiles, outcome="published") >= users
    assert total(samples, "stream_batch_size_count") >= 1 and total(samples, "stream_encoder_texts_total") >= 1
    for stage in ("queue_wait", "decode_clean", "encode", "cluster", "publish_updates", "stage2_pickup",
                  "table_write", "publish_profile"):
        assert total(samples, "stream_stage_seconds_count", stage=stage) > 0, stage
    assert total(samples, "stream_consumer_lag") == 0  # everything produced has been processed
    assert total(samples, "stream_watermark_timestamp_seconds") > 0
    info = [dict(lab) for (n, lab), _ in samples.items() if n == "stream_model_info"]
    assert len(info) == 1 and info[0]["encoder"] and info[0]["clustering"].startswith("kmeans")


def test_dashboard_shows_clusters_alerts_and_a_profile(broker, settings_factory, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    settings = settings_factory(broker.bootstrap, api_token=TOKEN)
    events = list(demo_feed(12, 240, seed=5, silent_fraction=0.34, gap_ms=120 * DAY_MS // 240))
    ensure_topics(settings)
    with WorkerProcess(settings, tmp_path) as worker:
        produce_feed(settings, events)
        wait_for_counts(settings, expected_counts(events), worker)
        wait_until(lambda: [v for _, v in read_topic(settings, settings.topic_alerts) if v], "a churn alert", 120)

        browser.get(f"http://{settings.web_host}:{settings.web_port}/dashboard/")
        token_form = wait_until(lambda: browser.find_element(By.ID, "auth").is_displayed(), "the token prompt", 20)
        assert token_form  # the worker requires a token, so the page asks for it before showing any data
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#auth-form button").click()
        wait_until(lambda: browser.find_element(By.ID, "kpi-in").text == "0.0", "a first rate")

        # New users' events while the page watches: the throughput shows them live.
        more = [FeedEvent(fe.kind, {**fe.event, "user_id": "x" + fe.event["user_id"]}, None)
                for fe in demo_feed(6, 200, seed=6, gap_ms=120 * DAY_MS // 200)]
        # Paced over about 20 s, so a loaded machine still sees the rate while the feed lasts.
        feeding = threading.Thread(target=produce_feed, args=(settings, more), kwargs={"rate": 10.0})
        feeding.start()
        rate = wait_until(lambda: (lambda t: t if t not in ("–", "0.0") else None)(
            browser.find_element(By.ID, "kpi-in").text), "live throughput", 60)
        assert float(rate) > 0
        feeding.join()
        events += more
        wait_for_counts(settings, expected_counts(events), worker)

        def cluster_rows() -> list[str]:
            return [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#cluster-list li.cluster")]

        rows = wait_until(lambda: [r for r in cluster_rows() if "·" in r and "(no keywords yet)" not in r], "clusters")
        status, clusters = worker.http_get("/clusters")
        assert status == 200
        assert all(-1 <= c["x"] <= 1 and -1 <= c["y"] <= 1 for c in clusters["clusters"])  # placed on the map
        shown = int(browser.find_element(By.ID, "map").get_attribute("data-points"))
        assert shown == sum(1 for c in clusters["clusters"] if c["size"] > 0) >= 2
        labels = browser.find_element(By.ID, "map").text  # the SVG renderer writes the bubble labels as text
        keyword = next(c["keywords"][0] for c in clusters["clusters"] if c["keywords"])
        assert keyword in labels and any(keyword in r for r in rows)

        risks = wait_until(lambda: [a for a in browser.find_elements(By.CSS_SELECTOR, "#alerts li.alert")
                                    if a.text.startswith("churn_risk")], "a churn-risk alert")
        user = risks[0].get_attribute("data-user")
        assert user in {a["user_id"] for _, v in read_topic(settings, settings.topic_alerts) if v
                        for a in [json.loads(v)] if a["type"] == "churn_risk"}
        # Opens that user's profile; the list re-renders on every poll, so find the item afresh to click it.
        wait_until(lambda: browser.find_element(By.CSS_SELECTOR, f'#alerts li.alert[data-user="{user}"]').click() or True,
                   "the alert to open")
        churn = wait_until(lambda: browser.find_element(By.ID, "profile").find_elements(By.ID, "profile-churn"),
                           "the profile")[0].text
        status, profile = worker.http_get(f"/profiles/{user}")
        assert status == 200
        assert f"score {profile['churn']['score']:.2f}" in churn
        assert ("alert open" in churn) == profile["churn"]["alerted"]
        assert all(r["detail"] in churn for r in profile["churn"]["reasons"])
        rfm = browser.find_element(By.ID, "profile-rfm").text
        assert profile["consumption"]["rfm"]["segment"] in rfm
        wait_until(lambda: browser.find_element(By.ID, "kpi-profiles").text == str(len(expected_counts(events))),
                   "the profile count")

        wait_for_watermark(worker, max(parse_ts(fe.event["ts"]) for fe in events) - int(settings.lateness_seconds * 1000))
        check_metrics(settings, events, len(expected_counts(events)))

        polled = browser.find_element(By.ID, "status").text
        wait_until(lambda: browser.find_element(By.ID, "status").text != polled, "a fresh poll")  # still live
        assert browser.find_element(By.ID, "kpi-in").text == "0.0"  # a rate, and nothing left to process
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        page = browser.execute_cdp_cmd("Page.captureScreenshot", {  # the whole page, not just the window
            "captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
        shot.write_bytes(base64.b64decode(page["data"]))
        print(f"\ndashboard screenshot: {shot}")
        _, data = worker.http_get("/dashboard/data")
        print("stage latency p50/p95 ms: " + ", ".join(f"{r['stage']} {r['p50_ms']}/{r['p95_ms']}" for r in data["stages"]))
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]]
        assert errors == []
