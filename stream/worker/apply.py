"""Stage 2's shell around :class:`stream.core.stage2.ProfileStage`: one internal record in, outputs out.

Kept out of the Faust agent so that its order of effects is testable without a broker: a
forget request's keyword counts reach the model owner (awaited) before the profile is deleted,
so a crash in between redelivers a request that still finds them; they are sent under the
request's place in the internal topic, which the owner takes out once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from stream.core.messages import Kind, unpack_internal
from stream.core.shared_model import ForgetRef
from stream.core.stage2 import Outputs, ProfileStage
from stream.worker.dashboard import RecentAlerts
from stream.worker.json_table import dumps
from stream.worker.metrics import Metrics

log = logging.getLogger(__name__)

Send = Callable[[str, str, bytes | None], Awaitable[None]]  # (topic, user id, value or None for a tombstone)
ForgetTerms = Callable[[Mapping[str, Mapping[str, int]], str, ForgetRef], Awaitable[None]]


class ApplyStage:
    """Applies the messages of internal records to ``profiles`` and publishes what they change."""

    def __init__(self, profiles: ProfileStage, *, send: Send, forget_terms: ForgetTerms, topic_profiles: str,
                 topic_alerts: str, metrics: Metrics, recent_alerts: RecentAlerts,
                 crash: Callable[[BaseException], Awaitable[Any]] | None = None) -> None:
        self.profiles = profiles
        self.crash = crash
        self.failed: BaseException | None = None
        self.send = send
        self.forget_terms = forget_terms
        self.topic_profiles = topic_profiles
        self.topic_alerts = topic_alerts
        self.metrics = metrics
        self.recent_alerts = recent_alerts

    async def consume(self, stream: Any) -> None:
        """The apply agent's body over a Faust stream: each record acked only once applied and published.

        Faust acks an event whose processing raised, and its supervisor restarts the agent, which would
        commit past an update never applied (a forget whose words reached the owner, its profile kept).
        A failure stops the worker instead, nothing after it is acked, and a restart reads it again.
        """
        if self.failed is not None:  # restarted by Faust's supervisor after a failure: ack nothing more
            raise self.failed
        acks = stream.noack()
        async for event in acks.events():
            message = event.message
            try:
                await self.record(event.value, topic=message.topic, partition=message.partition,
                                  offset=message.offset, timestamp=message.timestamp)
            except Exception as exc:  # a cancelled agent (shutdown) just leaves the record unacked
                self.failed = exc
                log.exception("stage 2 failed on %s/%s@%s: stopping the worker, which reads it again when restarted",
                              message.topic, message.partition, message.offset)
                if self.crash is not None:
                    await self.crash(exc)
                raise
            await acks.ack(event)

    async def record(self, value: bytes, *, topic: str, partition: int, offset: int, timestamp: float | None) -> None:
        """Every message of one record of ``topic``/``partition`` at ``offset``, in order."""
        picked, first = time.time(), time.perf_counter()  # an update also waits for those before it in the pack
        waited, wrote, published = [], [], []
        for index, message in enumerate(unpack_internal(value)):
            started = time.perf_counter()
            if message.get("kind") == Kind.FORGET:
                terms = self.profiles.terms_to_forget(message)  # type: ignore[arg-type]
                if terms is not None:
                    await self.forget_terms(terms, str(message["user_id"]), ForgetRef(f"{topic}/{partition}", offset, index))
            out = self.profiles.handle(message, partition)
            applied = time.perf_counter()
            await self.publish(out)
            if message.get("kind") != Kind.TICK:  # a tick is not an event: it re-assesses a whole partition
                waited.append(picked - (timestamp or picked) + (started - first))
                wrote.append(applied - started)
                published.append(time.perf_counter() - applied)
        self.metrics.record_stage("stage2_pickup", waited)
        self.metrics.record_stage("table_write", wrote)
        self.metrics.record_stage("publish_profile", published)

    async def publish(self, out: Outputs) -> None:
        for user, view in out.profiles:
            await self.send(self.topic_profiles, user, dumps(view))
        for user, alert in out.alerts:
            await self.send(self.topic_alerts, user, dumps(alert))
        for user in out.tombstones:
            await self.send(self.topic_profiles, user, None)
        self.metrics.record_published(self.topic_profiles, len(out.profiles) + len(out.tombstones))
        self.metrics.record_published(self.topic_alerts, len(out.alerts))
        for _, alert in out.alerts:
            self.metrics.record_alert(alert["type"])
            self.recent_alerts.add(alert)
        for user in out.tombstones:
            self.recent_alerts.forget(user)
