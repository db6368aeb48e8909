"""Text prefixes come from one place: explicit settings, else the model directory's metadata, else the name."""

from __future__ import annotations

from pathlib import Path

from stream.config import Settings
from stream.model_meta import Prefixes, model_prefixes, write_meta


def test_metadata_beats_the_name_and_explicit_values_beat_both(tmp_path: Path) -> None:
    model = tmp_path / "my-encoder"
    model.mkdir()
    assert model_prefixes(model) == Prefixes("", "")
    write_meta(model, {"prefixes": {"review": "doc: ", "search": "q: "}})
    assert model_prefixes(model) == Prefixes("doc: ", "q: ")
    assert model_prefixes(str(model), review="", search=None) == Prefixes("", "q: ")
    e5_named = tmp_path / "multilingual-e5-small"
    e5_named.mkdir()
    assert model_prefixes(e5_named) == Prefixes("passage: ", "query: ")
    write_meta(e5_named, {"prefixes": {}})
    assert model_prefixes(e5_named) == Prefixes("", "")


def test_unset_prefixes_stay_unset_in_a_worker_started_from_settings(monkeypatch) -> None:
    """WorkerProcess passes Settings.to_env(): an unset prefix must not arrive as the string "null"."""
    for name in ("STREAM_REVIEW_PREFIX", "STREAM_QUERY_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    env = Settings(model="x-e5", query_prefix="").to_env()
    assert "STREAM_REVIEW_PREFIX" not in env and env["STREAM_QUERY_PREFIX"] == ""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = Settings()
    assert child.review_prefix is None and child.query_prefix == ""
    assert model_prefixes(child.model, child.review_prefix, child.query_prefix) == Prefixes("passage: ", "")
