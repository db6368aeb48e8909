"""Three workers, one interest model: the same clusters everywhere, and an owner that can die.

The promise of the shared model on a real broker: every worker assigns a probe set of texts
to the same clusters for the same model version; the owner of the learning topic is SIGKILLed
mid-stream and another worker takes over; every text fed is learned exactly once (the newest
version's count of learned texts equals the texts produced); the clusters in all profiles come
from one lineage; a worker joining afterwards starts from the newest version.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from stream.config import Settings
from stream.core.shared_model import ModelView
from stream.devtools.broker import free_port
from stream.devtools.feed import FeedEvent, demo_feed
from stream.devtools.produce import produce_feed
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import read_topic
from stream.kafka.model_topics import latest_snapshot
from stream.kafka.topics import ensure_topics

from .worker_process import latest_profiles

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEXT_KINDS = ("review", "search")
PROBES = ["屏幕很清晰，电池耐用", "这本书的故事很感人", "酒店房间干净，早餐丰富", "衣服尺码偏小，面料舒服",
          "水果新鲜，配送很快", "洗发水味道好闻", "手机拍照效果一般", "小说情节紧凑"]


def counts(events: list[FeedEvent]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for fe in events:
        out[fe.event["user_id"]][fe.kind] += 1
    return {u: dict(c) for u, c in out.items()}


def wait_until(what: str, check, workers: list[WorkerProcess], timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for w in workers:
            w.check_alive()
        ok, last = check()
        if ok:
            return last
        time.sleep(1.0)
    tails = "\n".join(f"--- {w.name} {w.http_get('/health')}\n{w.log_tail(15)}" for w in workers)
    raise AssertionError(f"{what} not reached in {timeout}s; last seen: {last}\n{tails}")


def learning_sent(settings: Settings) -> dict[str, list[tuple[int, int, int, int]]]:
    """Per input partition, (learning offset, first, last, texts) of every part on the learning topic."""
    out: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
    for position, (_, value) in enumerate(read_topic(settings, settings.topic_learning)):
        message = json.loads(value)
        for part in message.get("parts", []):
            n = len(part.get("samples", [])) or sum(part.get("counts", []))
            out[part["source"].split("-")[0] + part["source"][-2:]].append((position, part["first"], part["last"], n))
    return dict(out)


def owner_of(workers: list[WorkerProcess]) -> WorkerProcess | None:
    for w in workers:
        status, health = w.http_get("/health")
        if status == 200 and health.get("model_owner"):
            return w
    return None


def probe(worker: WorkerProcess) -> tuple[str, list[int]]:
    query = urllib.parse.urlencode([("text", t) for t in PROBES])
    status, body = worker.http_get(f"/model/assign?{query}")
    assert status == 200, body
    return body["model_version"], body["clusters"]


def test_three_workers_share_one_model_and_survive_the_owner_dying(broker, settings_factory, tmp_path: Path) -> None:
    base = settings_factory(broker.bootstrap, partitions=6, clusters=4, warmup=60, warmup_max_wait=5.0,
                            model_publish_interval=0.3, model_state_interval=60.0)  # the successor catches up from
    # the state of the first version and the learning records after it
    ensure_topics(base)

    def worker(i: int) -> WorkerProcess:
        s: Settings = base.model_copy(update={"web_port": free_port(), "data_dir": tmp_path / f"w{i}"})
        return WorkerProcess(s, tmp_path / "logs", name=f"w{i}")

    workers = [worker(i) for i in range(3)]
    for w in workers:
        w.start()
    try:
        for w in workers:
            w.wait_healthy()
        feed = list(demo_feed(60, 900, seed=5, kinds=("review", "search", "order")))
        texts = sum(fe.kind in TEXT_KINDS for fe in feed)
        first, second = feed[:450], feed[450:]
        produce_feed(base, first)

        owner = wait_until("a model owner", lambda: ((o := owner_of(workers)) is not None, o), workers)
        first_texts = sum(fe.kind in TEXT_KINDS for fe in first)

        def learned_now() -> int:
            snapshot = latest_snapshot(base, base.topic_model)
            return ModelView.from_snapshot(snapshot).seen if snapshot else 0

        # Versions after the first carry the learning of the first half; the only state is the first version's
        # (STREAM_MODEL_STATE_INTERVAL=60), so the successor must replay what the owner acked since.
        wait_until("the first half learned", lambda: (learned_now() >= first_texts, learned_now()), workers)
        owner.kill()  # mid-stream: half the feed is still to come
        survivors = [w for w in workers if w is not owner]
        produce_feed(base, second)

        expected = counts(feed)

        def profiles_complete() -> tuple[bool, object]:
            latest = latest_profiles(base)
            got = {u: {k: v for k, v in p["behaviour"]["counts"].items() if v} for u, p in latest.items()}
            wrong = {u: (got.get(u), c) for u, c in expected.items() if got.get(u) != c}
            return got == expected, f"{len(expected) - len(wrong)}/{len(expected)} users right; wrong: {wrong}"

        wait_until("every profile's counts", profiles_complete, survivors, timeout=150)

        def all_learned() -> tuple[bool, object]:
            seen = learned_now()
            return seen >= texts, seen

        try:
            seen = wait_until("every text learned", all_learned, survivors, timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlearning sent per partition: {learning_sent(base)}") from None
        assert seen == texts, f"{seen} texts learned for {texts} produced: statistics lost or merged twice"
        new_owner = owner_of(survivors)
        assert new_owner is not None, "another worker took the learning partition over"

        profiles = latest_profiles(base)
        lineages = {p["model_version"].split("#")[0] for p in profiles.values() if p.get("model_version")}
        assert len(lineages) == 1, f"cluster ids from several models: {lineages}"

        joined = worker(9)  # a worker joining mid-stream starts from the newest version
        workers.append(joined)
        joined.start()
        joined.wait_healthy()
        everyone = [*survivors, joined]

        def same_version() -> tuple[bool, object]:
            answers = [probe(w) for w in everyone]
            return len({v for v, _ in answers}) == 1 and "unfitted" not in answers[0][0], answers

        answers = wait_until("one model version on every worker", same_version, everyone)
        assert len({tuple(c) for _, c in answers}) == 1, f"the same version assigns differently: {answers}"
        assert answers[0][0].split("#")[0].split("+")[1] in next(iter(lineages)), "probes use the profiles' lineage"
    finally:
        for w in workers:
            w.stop()
