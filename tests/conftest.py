"""Shared fixtures: a tiny local model, and (for integration tests) a real Kafka broker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stream.config import Settings


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight BERT with a Chinese character vocabulary, built offline once per session."""
    from stream.devtools.tinymodel import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A real single-node KRaft broker started by the project's own code on free ports."""
    from stream.devtools.broker import LocalBroker, free_port

    cache = Path(os.environ.get("STREAM_CACHE_DIR", Path.home() / ".cache" / "stream-profiles"))
    b = LocalBroker(tmp_path_factory.mktemp("broker"), cache, port=free_port(), controller_port=free_port())
    b.start()
    yield b
    b.stop()


@pytest.fixture
def settings_factory(tmp_path: Path, tiny_model: Path):  # noqa: ANN201
    """Settings isolated per test: own data dir and topic names, tiny model, small clustering."""

    def make(broker: str = "127.0.0.1:1", **overrides: object) -> Settings:
        from stream.devtools.broker import free_port

        name = tmp_path.name.replace("_", "-")[-40:]
        values: dict[str, object] = {
            "broker": broker,
            "app_id": f"app-{name}",
            "data_dir": tmp_path / "data",
            "model": str(tiny_model),
            "partitions": 3,
            "clusters": 4,
            "warmup": 40,
            "warmup_max_wait": 3.0,
            "batch_size": 64,
            "web_port": free_port(),
            "session_timeout": 8.0,
            "idle_partition_seconds": 3.0,
            **{field: f"{Settings.model_fields[field].default}-{name}" for field in Settings.model_fields
               if field.startswith("topic_")},
        }
        values.update(overrides)
        return Settings(**values)

    return make
