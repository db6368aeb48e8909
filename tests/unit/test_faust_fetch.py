"""The patched Faust worker consumer long-polls for the configured time, per app."""

from __future__ import annotations

import asyncio

import faust

from stream.worker.faust_fetch import set_fetch_max_wait


def consumer_wait_ms(app: faust.App) -> int:
    async def build() -> int:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        return consumer._fetch_max_wait_ms

    return asyncio.run(build())


def test_the_configured_wait_reaches_aiokafka_and_other_apps_keep_fausts_default() -> None:
    patched = faust.App("fetch-patched", broker="kafka://127.0.0.1:1", store="memory://")
    untouched = faust.App("fetch-untouched", broker="kafka://127.0.0.1:1", store="memory://")
    set_fetch_max_wait(patched, 0.1)
    assert consumer_wait_ms(patched) == 100
    assert consumer_wait_ms(untouched) == 1500  # faust-streaming's hard-coded value
    set_fetch_max_wait(patched, 0.25)  # installing twice wraps once
    assert consumer_wait_ms(patched) == 250
