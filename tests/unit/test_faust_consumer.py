"""The patched Faust worker consumer long-polls for the configured time and reads committed records, per app."""

from __future__ import annotations

import asyncio

import faust

from stream.worker.faust_consumer import configure_worker_consumer


def consumer_settings(app: faust.App) -> tuple[int, str]:
    async def build() -> tuple[int, str]:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        return consumer._fetch_max_wait_ms, consumer._isolation_level

    return asyncio.run(build())


def test_the_configured_settings_reach_aiokafka_and_other_apps_keep_fausts_defaults() -> None:
    patched = faust.App("fetch-patched", broker="kafka://127.0.0.1:1", store="memory://")
    untouched = faust.App("fetch-untouched", broker="kafka://127.0.0.1:1", store="memory://")
    configure_worker_consumer(patched, 0.1)
    assert consumer_settings(patched) == (100, "read_committed")
    assert consumer_settings(untouched) == (1500, "read_uncommitted")  # faust-streaming's hard-coded values
    configure_worker_consumer(patched, 0.25)  # installing twice wraps once
    assert consumer_settings(patched) == (250, "read_committed")
