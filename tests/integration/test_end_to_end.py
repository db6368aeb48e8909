"""The product promise, end to end: events on a real broker become profiles on the profiles topic."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from stream.core.messages import decode_interest_vector
from stream.devtools.feed import FeedEvent, demo_feed
from stream.devtools.produce import produce_feed
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.topics import ensure_topics

from .worker_process import wait_for_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def expected_counts(events: list[FeedEvent]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for fe in events:
        counts[fe.event["user_id"]][fe.kind] += 1
    return {u: dict(c) for u, c in counts.items()}


def test_profiles_match_produced_events_and_survive_a_crash(broker, settings_factory, tmp_path: Path) -> None:
    settings = settings_factory(broker.bootstrap)
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "logs")
    worker.start()
    try:
        first = list(demo_feed(30, 300, seed=1))
        produce_feed(settings, first)
        profiles = wait_for_counts(settings, expected_counts(first), worker)

        assert len(profiles) == 30
        for p in profiles.values():
            if p["behaviour"]["counts"]["review"] + p["behaviour"]["counts"]["search"] == 0:
                continue
            i = p["interests"]
            assert i["cluster"] is not None and 0 <= i["cluster"] < settings.clusters
            assert i["cluster_distribution"] and abs(sum(i["cluster_distribution"].values()) - 1) < 1e-3
            assert len(decode_interest_vector(i["interest_vector"])) == 64
            assert p["model_version"].startswith("tiny-bert")
            assert p["last_event_ts"].endswith("Z")
        lineage = next(p["model_version"] for p in profiles.values() if p["model_version"]).split("#")[0]

        user = next(iter(profiles))
        status, body = worker.http_get(f"/profiles/{user}")
        assert status == 200 and body["behaviour"]["counts"] == profiles[user]["behaviour"]["counts"]
        status, body = worker.http_get("/profiles/nobody-here")
        assert status == 404 and body["error"] == "not_found"

        worker.kill()
        worker.start()
        second = list(demo_feed(30, 150, seed=2, kinds=("review", "search", "order")))
        produce_feed(settings, second)
        profiles = wait_for_counts(settings, expected_counts(first + second), worker)
        assert {p["model_version"].split("#")[0] for p in profiles.values() if p["model_version"]} == {lineage}, "clustering model restarted"
    finally:
        worker.stop()
