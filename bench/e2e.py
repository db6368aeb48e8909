"""End-to-end throughput, latency and memory through a real broker and a real worker process.

First the naive one-at-a-time loop (:mod:`bench.naive`), on topics of its own on the same broker,
then the worker, each through the same phases: pre-warm (model, consumer group, clustering warm
start are paid before any clock runs), saturation (N events as fast as possible, until N updates
are on the profiles topic), then latency at half its own saturation rate. The worker also runs a
latency phase at the naive loop's rate, so the two are compared under the same offered load too.
Each phase has its own users, so a user's event count identifies events. The worker's per-stage
histograms are scraped around each phase.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from confluent_kafka import Producer

from bench.naive import NaiveLoop
from bench.processes import PeakRss, cpu_seconds, disk_usage, rss_bytes
from bench.stages import scrape, stage_table
from bench.watcher import ProfileWatcher
from stream.config import Settings
from stream.devtools.broker import LocalBroker, free_port
from stream.devtools.feed import FeedEvent, reviews_feed
from stream.devtools.produce import produce_feed
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import make_producer, topic_offsets
from stream.kafka.topics import ensure_topics

PREWARM_EVENTS = 256  # more than the clustering warm-up buffer, so the clusterer is fitted before timing starts
NAIVE_EVENTS = 1000  # the naive loop's saturation phase (a ratio needs no more; it is the slow part of the run)


class Consumer(Protocol):
    """The process under test: the worker, or the naive loop."""

    @property
    def pid(self) -> int: ...

    def check_alive(self) -> None: ...


@dataclass(frozen=True)
class E2EConfig:
    reviews: Path
    pipeline: Settings  # model, device, dtype, batch policy and clustering as the benchmark runs them
    events: int
    latency_seconds: float
    seed: int


@dataclass(frozen=True)
class E2EResult:
    events: int
    seconds: float
    events_per_s: float
    worker_cpu_us_per_event: float  # worker process CPU (all threads) during saturation
    broker_cpu_us_per_event: float
    offered_rate: float
    latency_events: int
    latency_ms: dict[str, float]
    rss_rest_bytes: int
    rss_peak_bytes: int
    users: int
    state_disk_bytes: int
    state_disk_bytes_per_user: float
    profile_message_bytes_mean: float
    stages_saturation: list[dict[str, Any]]  # per stage: count, p50/p95/p99 ms (worker histograms, this phase only)
    stages_latency: list[dict[str, Any]]
    naive: dict[str, Any]  # the one-at-a-time loop: events_per_s, cpu_us_per_event, offered_rate, latency_ms
    same_rate_latency_ms: dict[str, float]  # the pipeline at the naive loop's half-load rate (naive["offered_rate"])
    same_rate_events: int
    stages_same_rate: list[dict[str, Any]]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def wait_for_leaders(settings: Settings, topic: str, timeout: float = 60.0) -> None:
    """A just-created topic answers "not leader" for a while; the profile watcher must not start before that ends."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            topic_offsets(settings, topic)
            return
        except Exception:  # noqa: BLE001 - librdkafka raises KafkaException or RuntimeError until leaders exist
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def tagged(feed: Iterable[FeedEvent], phase: str) -> list[FeedEvent]:
    """Prefix user and event ids with the phase, so phases never share a user's count."""
    return [
        FeedEvent(fe.kind, {**fe.event, "user_id": f"{phase}-{fe.event['user_id']}",
                            "event_id": f"{phase}-{fe.event['event_id']}"}, fe.label)
        for fe in feed
    ]


def review_events(cfg: E2EConfig, phase: str, n: int, users: int, seed: int) -> list[FeedEvent]:
    return tagged(reviews_feed(cfg.reviews, max(1, min(users, n)), n, seed=seed, kinds=("review",)), phase)


def per_user(events: Iterable[FeedEvent]) -> Counter[str]:
    return Counter(fe.event["user_id"] for fe in events)


def worker_settings(pipeline: Settings, broker: str, data_dir: Path) -> Settings:
    """The benchmark's pipeline settings, on the temporary broker with its own data dir and free web port."""
    return pipeline.model_copy(update={
        "broker": broker,
        "app_id": f"bench-{int(time.time())}",
        "data_dir": data_dir,
        "warmup_max_wait": 5.0,
        "web_port": free_port(),
    })


def prewarm(cfg: E2EConfig, settings: Settings, watcher: ProfileWatcher, worker: Consumer, producer: Producer,
            phase: str = "warm") -> None:
    """Pay model load, consumer-group join, the clustering warm start and the producer's idempotence
    handshake (every phase then sends through this one producer, as a long-lived service would) before
    any clock runs."""
    events = review_events(cfg, phase, PREWARM_EVENTS, users=64, seed=cfg.seed + 2)
    produce_feed(settings, events, total=len(events), show_progress=True, producer=producer)
    watcher.wait_for(per_user(events), worker.check_alive)


@dataclass(frozen=True)
class Saturation:
    events: int
    seconds: float
    worker_cpu: float
    broker_cpu: float


def saturate(settings: Settings, watcher: ProfileWatcher, worker: Consumer, broker_pid: int,
             events: list[FeedEvent], producer: Producer) -> Saturation:
    """Produce everything at once; the clock stops when the last event's profile update arrives."""
    expected = per_user(events)
    worker_cpu, broker_cpu = cpu_seconds(worker.pid), cpu_seconds(broker_pid)
    start = time.monotonic()
    produce_feed(settings, events, total=len(events), show_progress=True, producer=producer)
    watcher.wait_for(expected, worker.check_alive)
    end = max(watcher.appeared(u, n) for u, n in expected.items())
    return Saturation(len(events), end - start, cpu_seconds(worker.pid) - worker_cpu,
                      cpu_seconds(broker_pid) - broker_cpu)


def latencies_ms(settings: Settings, watcher: ProfileWatcher, worker: Consumer, events: list[FeedEvent],
                 rate: float, producer: Producer) -> np.ndarray:
    """Per event: arrival of the first profile that counts it, minus the moment it was handed to the producer."""
    sent: dict[tuple[str, int], float] = {}
    counts: Counter[str] = Counter()

    def on_sent(fe: FeedEvent) -> None:
        user = fe.event["user_id"]
        counts[user] += 1
        sent[(user, counts[user])] = time.monotonic()

    produce_feed(settings, events, rate=rate, on_sent=on_sent, total=len(events), show_progress=True,
                 producer=producer)
    watcher.wait_for(counts, worker.check_alive)
    return np.array([1000 * (watcher.appeared(u, c) - t) for (u, c), t in sent.items()])


def percentiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(values, q)) for q in (50, 95, 99)} | {"max": float(values.max())}


def run_e2e(cfg: E2EConfig, progress: Callable[[str], None]) -> E2EResult:
    """Broker and worker in a temporary directory; everything is stopped and removed on the way out."""
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stream-bench-")))
        broker = LocalBroker(tmp / "broker", Settings().cache_dir, port=free_port(), controller_port=free_port())
        progress("starting broker")
        broker.start()
        stack.callback(broker.stop)
        broker_pid = broker.pid()
        if broker_pid is None:
            raise RuntimeError(f"broker on {broker.bootstrap} started but left no pid file")
        settings = worker_settings(cfg.pipeline, broker.bootstrap, tmp / "worker")
        producer = make_producer(settings)
        # The naive loop first, with no worker running: its half-load rate is also offered to the pipeline.
        naive = run_naive(cfg, settings, tmp, broker_pid, progress, producer)
        ensure_topics(settings)
        wait_for_leaders(settings, settings.topic_profiles)
        watcher = stack.enter_context(ProfileWatcher(settings))
        worker = stack.enter_context(WorkerProcess(settings, tmp))
        progress("starting worker")
        worker.wait_healthy()
        progress(f"pre-warming with {PREWARM_EVENTS} events")
        prewarm(cfg, settings, watcher, worker, producer)
        rss_rest = rss_bytes(worker.pid)
        with PeakRss(worker.pid) as peak:
            progress(f"saturation: {cfg.events} events")
            events = review_events(cfg, "sat", cfg.events, users=cfg.events // 5, seed=cfg.seed)
            before_sat = scrape(settings)
            sat = saturate(settings, watcher, worker, broker_pid, events, producer)
            before_lat = scrape(settings)
            rate = sat.events / sat.seconds / 2
            n = max(1, round(rate * cfg.latency_seconds))
            progress(f"latency: {n} events at {rate:.1f}/s")
            lat = latencies_ms(settings, watcher, worker, review_events(cfg, "lat", n, n // 2, cfg.seed + 1), rate,
                               producer)
            after_lat = scrape(settings)
            same = naive["offered_rate"]
            n_same = max(1, round(same * cfg.latency_seconds))
            progress(f"latency at the naive loop's rate: {n_same} events at {same:.1f}/s")
            lat_same = latencies_ms(settings, watcher, worker,
                                    review_events(cfg, "same", n_same, n_same // 2, cfg.seed + 2), same, producer)
            after_same = scrape(settings)
        worker.stop()
        disk = disk_usage(settings.data_dir)
        return E2EResult(
            events=sat.events,
            seconds=sat.seconds,
            events_per_s=sat.events / sat.seconds,
            worker_cpu_us_per_event=1e6 * sat.worker_cpu / sat.events,
            broker_cpu_us_per_event=1e6 * sat.broker_cpu / sat.events,
            offered_rate=rate,
            latency_events=len(lat),
            latency_ms=percentiles(lat),
            rss_rest_bytes=rss_rest,
            rss_peak_bytes=peak.peak,
            users=watcher.users,
            state_disk_bytes=disk,
            state_disk_bytes_per_user=disk / max(1, watcher.users),
            profile_message_bytes_mean=float(np.mean(watcher.sizes)) if watcher.sizes else 0.0,
            stages_saturation=stage_table(before_lat, before_sat),
            stages_latency=stage_table(after_lat, before_lat),
            naive=naive,
            same_rate_latency_ms=percentiles(lat_same),
            same_rate_events=len(lat_same),
            stages_same_rate=stage_table(after_same, after_lat),
        )


def run_naive(cfg: E2EConfig, pipeline: Settings, tmp: Path, broker_pid: int,
              progress: Callable[[str], None], producer: Producer) -> dict[str, Any]:
    """The same phases through the naive loop, on topics and a consumer group of its own (no worker running)."""
    settings = pipeline.model_copy(update={
        "app_id": f"{pipeline.app_id}-naive", "topic_reviews": "naive-reviews", "topic_profiles": "naive-profiles",
    })
    ensure_topics(settings)
    wait_for_leaders(settings, settings.topic_profiles)
    with ProfileWatcher(settings) as watcher, NaiveLoop(settings, tmp) as naive:
        progress(f"naive loop: pre-warming with {PREWARM_EVENTS} events")
        prewarm(cfg, settings, watcher, naive, producer, phase="nwarm")
        n_sat = min(cfg.events, NAIVE_EVENTS)
        progress(f"naive loop: saturation, {n_sat} events")
        sat = saturate(settings, watcher, naive, broker_pid,
                       review_events(cfg, "nsat", n_sat, users=n_sat // 5, seed=cfg.seed), producer)
        rate = sat.events / sat.seconds / 2
        n = max(1, round(rate * cfg.latency_seconds))
        progress(f"naive loop: latency, {n} events at {rate:.1f}/s")
        lat = latencies_ms(settings, watcher, naive, review_events(cfg, "nlat", n, n // 2, cfg.seed + 1), rate,
                           producer)
    return {
        "events": sat.events,
        "events_per_s": sat.events / sat.seconds,
        "cpu_us_per_event": 1e6 * sat.worker_cpu / sat.events,
        "offered_rate": rate,
        "latency_events": len(lat),
        "latency_ms": percentiles(lat),
    }
