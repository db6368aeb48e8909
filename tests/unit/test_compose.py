"""docker-compose.yml must not expose the PLAINTEXT broker or an unauthenticated API beyond the host."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())


def test_every_published_port_binds_to_loopback() -> None:
    ports = [p for service in COMPOSE["services"].values() for p in service.get("ports", [])]
    assert ports
    assert all(str(p).startswith("127.0.0.1:") for p in ports), ports


def test_worker_requires_an_api_token() -> None:
    token = COMPOSE["services"]["worker"]["environment"]["STREAM_API_TOKEN"]
    assert token.startswith("${STREAM_API_TOKEN:?"), "compose must refuse to start without a token"


def test_scaled_workers_keep_their_state_apart() -> None:
    """`docker compose up --scale worker=3`: replicas share one volume, so each needs its own data directory,
    and the published port range must give each replica a host port."""
    worker = COMPOSE["services"]["worker"]
    assert "STREAM_DATA_DIR=/data/$${HOSTNAME}" in " ".join(worker["command"])
    low, high = worker["ports"][0].split(":")[1].split("-")
    assert int(high) - int(low) + 1 >= 3
