"""The Faust shell: two agents, one table, web views. Logic lives in pure modules.

Commit order (at-least-once, made exact by idempotence):

Stage 1 ``encode`` (micro-batches of the input topics, manual acks):
  1. decode/validate, clean, encode, assign and learn in a worker thread;
  2. publish dead letters, per-user updates and event-time ticks, and wait until the
     broker has them;
  3. at most once per commit interval: write the clustering checkpoint atomically (it
     records, per source partition, the last offset learned from), then ack every batch
     it covers; Faust commits acked offsets after flushing its producer.
  A crash before 3 redelivers the batches since the last checkpoint: the restored model
  has not learned them, so they are learned once; the updates re-sent for them are
  skipped by stage 2, and a record the checkpoint had learned is assigned, not relearned.

Stage 2 ``apply`` (``profile-updates``, keyed by user id, co-partitioned with the table):
  apply the update to the user's profile unless its (source partition, offset) was
  applied already, re-assess churn, store it (table changelog), publish the profile and
  any churn alert. A tick re-assesses every user of its partition at the watermark.
  Faust flushes the producer (changelog + outputs) before committing the offset.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View

from stream.config import Settings
from stream.core.clustering import OnlineClusterer, SnapshotMismatch
from stream.core.privacy import pseudonym
from stream.core.profile import (
    Profile,
    Rules,
    already_applied,
    apply_update,
    churn_step,
    make_tick,
    new_profile,
    public_view,
)
from stream.kafka.clients import committed_offsets, read_topic
from stream.worker import checkpoint
from stream.worker.pipeline import (
    KEYWORDS_PER_CLUSTER,
    BatchProcessor,
    BatchResult,
    Record,
)

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


class EncodeStage:
    """Stage 1: holds the processor, its checkpoint and the records held for warm start."""

    def __init__(
        self,
        processor: BatchProcessor,
        checkpoint_path: Path,
        *,
        updates: faust.TopicT,
        dead_letters: faust.TopicT,
        partitions: int,
        highwaters: Callable[[], dict[str, int | None]],
        warmup_max_wait: float,
        checkpoint_interval: float,
    ) -> None:
        self.processor = processor
        self.checkpoint_path = checkpoint_path
        self.updates = updates
        self.dead_letters = dead_letters
        self.partitions = partitions
        self.highwaters = highwaters
        self.warmup_max_wait = warmup_max_wait
        self.checkpoint_interval = checkpoint_interval
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        self.lock = asyncio.Lock()
        self.held: list[tuple[faust.StreamT, faust.EventT]] = []
        self.held_since: float | None = None
        self.to_ack: list[tuple[faust.StreamT, faust.EventT]] = []
        self.dirty = False
        self.last_checkpoint = time.monotonic()
        self.dead_sent: set[str] = set()

    def restore(self) -> None:
        """Continue the clustering model of the last run, if it fits the current encoder."""
        data = checkpoint.read(self.checkpoint_path)
        if data is None:
            return
        try:
            clusterer, state = OnlineClusterer.restore(data)
        except SnapshotMismatch as exc:
            log.warning("ignoring clustering checkpoint %s: %s", self.checkpoint_path, exc)
            return
        if state.get("encoder_version") != self.processor.encoder.version or clusterer.k != self.processor.clusterer.k:
            log.warning(
                "clustering checkpoint %s is for encoder %s, k=%s; starting a new model",
                self.checkpoint_path, state.get("encoder_version"), clusterer.k,
            )
            return
        self.processor.load_state(clusterer, state)
        log.info("restored clustering model %s from %s", clusterer.version, self.checkpoint_path)

    async def handle(self, stream: faust.StreamT, events: list[faust.EventT]) -> None:
        records = [
            Record(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
            for e in events
        ]
        async with self.lock:
            self.held.extend((stream, e) for e in events)
            await self._run(records, force_fit=False, highwaters=self.highwaters())

    async def on_timer(self) -> None:
        """Let time pass without records: idle partitions release the watermark, and a warm-up
        that waited ``warmup_max_wait`` fits with what is buffered."""
        force_fit = self.held_since is not None and time.monotonic() - self.held_since >= self.warmup_max_wait
        async with self.lock:
            await self._run([], force_fit=force_fit, highwaters=self.highwaters())

    async def _run(
        self, records: list[Record], *, force_fit: bool, highwaters: dict[str, int | None] | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        result: BatchResult = await loop.run_in_executor(
            self.executor, lambda: self.processor.process(records, force_fit=force_fit, highwaters=highwaters)
        )
        self.dirty |= bool(records or result.updates or result.ticks)
        now_ms = _now_ms()
        dead = [d for d in result.dead_letters if d.key not in self.dead_sent]
        pending = [await self.dead_letters.send(key=d.key.encode(), value=d.message(now_ms), force=True) for d in dead]
        pending += [
            await self.updates.send(key=u["user_id"].encode(), value=u, force=True) for u in result.updates
        ]
        pending += [
            await self.updates.send(key=b"", value=make_tick(w), partition=p, force=True)
            for w in result.ticks
            for p in range(self.partitions)
        ]
        await asyncio.gather(*pending)
        self.dead_sent.update(d.key for d in dead)
        if result.held:
            self.held_since = self.held_since or time.monotonic()
        else:
            self.to_ack.extend(self.held)
            self.held.clear()
            self.held_since = None
        await self._checkpoint_then_ack()

    async def _checkpoint_then_ack(self) -> None:
        """At most once per ``checkpoint_interval``: persist the model, then ack what it has learned from.

        Acking only after the checkpoint means a crash redelivers every record whose learning
        was not saved, so learning is neither lost nor applied twice; batching the fsync keeps
        it off the latency path of small micro-batches.
        """
        if time.monotonic() - self.last_checkpoint < self.checkpoint_interval:
            return
        if self.dirty:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._save_checkpoint)
            self.dirty = False
        for stream, event in self.to_ack:
            await stream.ack(event)
        self.to_ack.clear()
        self.last_checkpoint = time.monotonic()

    async def forget_terms(self, terms: dict[str, dict[str, int]]) -> None:
        """Take a forgotten user's words out of the cluster keyword counts, and persist that."""
        async with self.lock:
            for cluster, counts in terms.items():
                for token, n in counts.items():
                    self.processor.terms.remove(int(cluster), [token], weight=float(n))
            await asyncio.get_running_loop().run_in_executor(self.executor, self._save_checkpoint)

    def recall_dead_letters(self, settings: Settings) -> None:
        """Dead letters already published for records that can still be redelivered (offset >= committed).

        Dead letters are keyed by their source position; remembering the ones a previous run
        published keeps a crash between publishing and committing from publishing them twice.
        """
        committed = committed_offsets(settings, settings.app_id, settings.kind_of_topic)
        for key, _ in read_topic(settings, settings.topic_dead_letters):
            source, _, offset = key.decode().rpartition("/")
            if int(offset) >= committed.get(source, 0):
                self.dead_sent.add(key.decode())
        log.info("%d dead letters of uncommitted records were published before; they will not be repeated", len(self.dead_sent))

    def _save_checkpoint(self) -> None:
        checkpoint.write_atomic(self.checkpoint_path, self.processor.clusterer.snapshot(**self.processor.state()))

    def clusters(self) -> dict[str, Any]:
        """Cluster sizes and keywords of this worker's model, for GET /clusters."""
        clusterer = self.processor.clusterer
        sizes = clusterer.sizes()
        keywords = self.processor.terms.top_keywords(KEYWORDS_PER_CLUSTER * 2)
        return {
            "model_version": self.processor.model_version,
            "fitted": clusterer.fitted,
            "texts_learned": clusterer.seen,
            "clusters": [
                {"cluster": c, "size": round(float(sizes[c]), 2), "keywords": [w for w, _ in keywords.get(c, [])]}
                for c in range(clusterer.k)
            ],
        }


def _highwater(app: faust.App, tp: faust.types.TP) -> int | None:
    """End offset of an input partition, None while the client does not know it yet."""
    try:
        return app.consumer.highwater(tp)
    except Exception:  # noqa: BLE001 - aiokafka asserts or raises while a rebalance reassigns the partition
        return None


def rules_from(settings: Settings) -> Rules:
    return Rules(
        half_life_ms=settings.interest_half_life_days * 86_400_000,
        windows_days=tuple(settings.windows_days),
        currency=settings.currency,
        inactivity_days=settings.inactivity_days,
        alert_at=settings.churn_alert_at,
        recover_at=settings.churn_recover_at,
    )


def register(app: faust.App, settings: Settings, processor: BatchProcessor) -> EncodeStage:
    """Declare topics, the profile table, the agents and the web views on ``app``."""
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    sources = app.topic(*settings.kind_of_topic, **raw)
    json_out = {"key_serializer": "raw", "value_serializer": "json"}
    updates = app.topic(settings.topic_updates, **json_out)
    profiles_out = app.topic(settings.topic_profiles, **json_out)
    tombstones = app.topic(settings.topic_profiles, key_serializer="raw", value_serializer="raw")
    alerts_out = app.topic(settings.topic_alerts, **json_out)
    changelog = {"segment.ms": str(3_600_000), "min.cleanable.dirty.ratio": "0.2"}  # let compaction keep recovery short
    table = app.Table(
        "profile-state",
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
        extra_topic_configs=changelog,
    )
    forgotten = app.Table(
        "forgotten",
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
        help="per forgotten user only the source offsets already applied, so redelivery cannot resurrect a profile",
        extra_topic_configs=changelog,
    )
    stage = EncodeStage(
        processor,
        settings.data_dir / "clustering" / f"{settings.app_id}.ckpt",
        updates=updates,
        dead_letters=app.topic(settings.topic_dead_letters, **json_out),
        partitions=settings.partitions,
        highwaters=lambda: {
            f"{tp.topic}/{tp.partition}": _highwater(app, tp)
            for tp in app.consumer.assignment()
            if tp.topic in settings.kind_of_topic
        },
        warmup_max_wait=settings.warmup_max_wait,
        checkpoint_interval=settings.commit_interval,
    )
    stage.restore()
    stage.recall_dead_letters(settings)
    rules = rules_from(settings)

    async def publish(profile: Profile, alert: dict[str, Any] | None, as_of: int) -> None:
        key = profile["user_id"].encode()
        view = public_view(profile, as_of=as_of, updated_at_ms=_now_ms(), rules=rules)
        await profiles_out.send(key=key, value=view, force=True)
        if alert is not None:
            await alerts_out.send(key=key, value=alert, force=True)

    async def on_update(update: dict[str, Any], partition: int) -> None:
        user = update["user_id"]
        profile = table.get(user)
        if profile is None:
            profile = new_profile(user)
            profile["applied"] = dict((forgotten.get(user) or {}).get("applied", {}))
        if update["kind"] == "forget":
            await on_forget(profile, update)
            return
        updated = apply_update(profile, update, rules)
        if updated is profile:
            return
        updated, alert = churn_step(updated, updated["as_of"], rules)
        updated["partition"] = partition
        table[user] = updated
        await publish(updated, alert, updated["as_of"])

    async def on_forget(profile: Profile, update: dict[str, Any]) -> None:
        """Right to be forgotten: tombstones on the changelog and the profiles topic, keyword counts taken back."""
        if already_applied(profile, update):
            return
        user = profile["user_id"]
        forgotten[user] = {"applied": {**profile["applied"], update["source"]: update["offset"]}}
        if user in table:
            del table[user]
            await stage.forget_terms(profile["terms"])
        await tombstones.send(key=user.encode(), value=None, force=True)

    async def on_tick(watermark: int, partition: int) -> None:
        for user, profile in list(table.items()):
            if profile.get("partition") != partition or profile["last_event_ts"] is None:
                continue
            updated, alert = churn_step(profile, watermark, rules)
            if alert is not None:
                table[user] = updated
                await publish(updated, alert, watermark)

    @app.agent(sources, name="encode")
    async def encode(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_wait):
            await stage.handle(stream, events)

    @app.timer(interval=1.0)
    async def let_time_pass() -> None:
        await stage.on_timer()

    @app.agent(updates, name="apply")
    async def apply(stream: faust.StreamT) -> None:
        async for event in stream.core.events():
            update, partition = event.value, event.message.partition
            if update.get("kind") == "tick":
                await on_tick(int(update["watermark"]), partition)
            else:
                await on_update(update, partition)

    def authorized(request: Request) -> bool:
        if not settings.api_token:
            return True
        return hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {settings.api_token}")

    def unauthorized(web: View) -> Response:
        return web.json({"error": "unauthorized", "detail": "send Authorization: Bearer <STREAM_API_TOKEN>"}, status=401)

    def ready() -> bool:
        return app.tables.recovery.completed.is_set() and not app.rebalancing

    @app.page("/profiles/{user_id}")
    @app.table_route(table=table, match_info="user_id")
    async def profile_view(web: View, request: Request, user_id: str) -> Response:
        if not authorized(request):
            return unauthorized(web)
        if not ready():
            return web.json({"error": "recovering", "detail": "tables are being restored; retry shortly"}, status=503,
                            headers={"Retry-After": "2"})
        profile = table.get(user_id)
        if profile is None:
            detail = "forgotten on request" if user_id in forgotten else "no events seen for this user"
            return web.json({"error": "not_found", "user_id": user_id, "detail": detail}, status=404)
        return web.json(public_view(profile, as_of=processor.watermark, updated_at_ms=_now_ms(), rules=rules))

    @app.page("/users/{raw_id}/profile")
    async def raw_id_view(web: View, request: Request, raw_id: str) -> Response:
        """Lookup by the raw user id: hashed here, then routed like any profile lookup."""
        if not authorized(request):
            return unauthorized(web)
        key = settings.pseudonym_key.encode()
        target = pseudonym(raw_id, key) if key else raw_id
        return web.bytes(b"", status=307, headers={"Location": f"/profiles/{urllib.parse.quote(target)}"})

    @app.page("/clusters")
    async def clusters_view(web: View, request: Request) -> Response:
        if not authorized(request):
            return unauthorized(web)
        return web.json(stage.clusters())

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        return web.json(
            {"status": "ok", "ready": ready(), "model_version": stage.processor.model_version,
             "clusters_fitted": stage.processor.clusterer.fitted, "held_for_warmup": len(stage.held),
             "watermark": stage.processor.watermark}
        )

    return stage
