"""The loop a user would write instead of the pipeline: the benchmark's baseline, one message at a time.

Plain confluent-kafka and the textbook transformers recipe: poll one review, tokenize it, run the
model, mean-pool, ``MiniBatchKMeans.partial_fit``, produce a small profile (the user's event count
and cluster), commit synchronously. Same broker, model, dtype, torch threads and data as the
pipeline; no validation, privacy, jieba, watermark, state store or exactly-once bookkeeping, so it
is a generous baseline. Run as ``python -m bench.naive`` in its own process, configured like a
worker by ``STREAM_*`` variables (input: the reviews topic; output: the profiles topic).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import FrameType

import numpy as np
from confluent_kafka import Consumer, Producer
from sklearn.cluster import MiniBatchKMeans

from stream.config import Settings
from stream.devtools.worker_process import settings_env
from stream.kafka.security import confluent_config
from stream.worker.encoder import load_encoder


class NaiveLoop:
    """``python -m bench.naive`` as a subprocess, for as long as the block runs."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_path = log_dir / "naive.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> NaiveLoop:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.naive"], env=settings_env(self.settings),
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"naive loop exited:\n{tail}")


def main() -> int:
    settings = Settings()
    encoder = load_encoder(settings)  # only for its tokenizer and model: the forward pass below is hand-written
    tokenizer, model = encoder.tokenizer, encoder.model
    import torch

    consumer = Consumer({**confluent_config(settings), "group.id": settings.app_id,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer(confluent_config(settings))
    consumer.subscribe([settings.topic_reviews])
    kmeans = MiniBatchKMeans(n_clusters=settings.clusters, random_state=settings.seed, n_init=1)
    first: list[np.ndarray] | None = []  # partial_fit needs k samples once before it takes one at a time
    counts: Counter[str] = Counter()
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    print("naive loop running", flush=True)
    while not stopping:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        event = json.loads(msg.value())
        inputs = tokenizer(settings.review_prefix + event["text"], truncation=True,
                           max_length=settings.max_tokens, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        x = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).float().numpy()
        cluster = None
        if first is not None:
            first.append(x[0])
            if len(first) >= settings.clusters:
                kmeans.partial_fit(np.stack(first))
                first = None
        else:
            kmeans.partial_fit(x)
            cluster = int(kmeans.predict(x)[0])
        counts[event["user_id"]] += 1
        profile = {"user_id": event["user_id"], "cluster": cluster,
                   "behaviour": {"events_total": counts[event["user_id"]]}}
        producer.produce(settings.topic_profiles, key=event["user_id"].encode(), value=json.dumps(profile).encode())
        producer.poll(0)
        consumer.commit(message=msg, asynchronous=False)
    producer.flush(10)
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
