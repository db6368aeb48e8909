"""Tests for stream.worker.encoder with the tiny local BERT: shapes, batching invariance, model lookup, versions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from stream.core.batching import arrival_batches
from stream.worker.encoder import ModelNotFound, TransformerEncoder, resolve_model

HIDDEN = 64  # build_tiny_bert's default

TEXTS = [
    "好",
    "屏幕很清晰，电池也耐用，物流两天就到了，非常满意",
    "iphone 手机壳",
    "质量一般",
    "the usb cable is good and the wifi is bad",
    "默认好评",
    "这款蓝牙耳机音质不错，但是佩戴久了耳朵有点疼，降噪效果一般般，总体来说性价比还可以",
    "pc",
    "快递很快，包装完好",
    "衣服尺码偏小，建议买大一号",
    "a",
    "物流慢",
]


@pytest.fixture(scope="module")
def encoder(tiny_model: Path) -> TransformerEncoder:
    # a small token budget so that the default plan really makes several batches
    return TransformerEncoder(str(tiny_model), device="cpu", batch_tokens=64)


def test_output_shape_dtype_and_unit_norm(encoder: TransformerEncoder) -> None:
    out = encoder.encode(TEXTS)
    assert out.shape == (len(TEXTS), HIDDEN)
    assert encoder.dim == HIDDEN
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(out).all()
    # different texts, different vectors
    assert len({row.tobytes() for row in out}) == len(TEXTS)


def test_stats_count_texts_tokens_and_padding(encoder: TransformerEncoder) -> None:
    ids = encoder.tokenize(TEXTS)
    encoder.encode_ids(ids)
    stats = encoder.last_stats
    assert stats.texts == len(TEXTS)
    assert stats.tokens == sum(len(x) for x in ids)
    assert stats.padded_tokens >= stats.tokens
    assert stats.batches > 1


def test_token_budget_arrival_and_single_batches_agree(encoder: TransformerEncoder) -> None:
    """Event order is restored whatever the batch plan: row i is always the embedding of text i."""
    ids = encoder.tokenize(TEXTS)
    bucketed = encoder.encode_ids(ids)
    assert encoder.last_stats.batches > 1
    arrival = encoder.encode_ids(ids, plan=lambda lengths: arrival_batches(len(lengths), 8))
    single = np.stack([encoder.encode_ids([x])[0] for x in ids])
    assert np.abs(bucketed - single).max() < 1e-5
    assert np.abs(arrival - single).max() < 1e-5
    # and encode() is the same as tokenize + encode_ids
    assert np.abs(encoder.encode(TEXTS) - single).max() < 1e-5


def test_reversed_plan_still_returns_rows_in_input_order(encoder: TransformerEncoder) -> None:
    ids = encoder.tokenize(TEXTS)
    forward = encoder.encode_ids(ids, plan=lambda lengths: [list(range(len(lengths)))])
    backward = encoder.encode_ids(ids, plan=lambda lengths: [[i] for i in reversed(range(len(lengths)))])
    assert np.abs(forward - backward).max() < 1e-5


@pytest.mark.parametrize("position", [0, 5, len(TEXTS)])
def test_same_text_same_vector_at_any_position(encoder: TransformerEncoder, position: int) -> None:
    probe = "这款耳机音质很好"
    alone = encoder.encode([probe])[0]
    texts = [*TEXTS[:position], probe, *TEXTS[position:]]
    batched = encoder.encode_ids(encoder.tokenize(texts), plan=lambda lengths: [list(range(len(lengths)))])
    assert np.abs(batched[position] - alone).max() < 1e-5


def test_duplicates_in_one_batch_get_identical_rows(encoder: TransformerEncoder) -> None:
    out = encoder.encode(["默认好评", "物流慢", "默认好评"])
    assert np.abs(out[0] - out[2]).max() < 1e-6


def test_truncation_to_max_tokens(tiny_model: Path) -> None:
    enc = TransformerEncoder(str(tiny_model), device="cpu", max_tokens=8)
    assert max(len(x) for x in enc.tokenize(TEXTS)) == 8
    assert enc.encode(TEXTS).shape == (len(TEXTS), HIDDEN)


def test_cls_pooling_differs_from_mean(tiny_model: Path, encoder: TransformerEncoder) -> None:
    cls = TransformerEncoder(str(tiny_model), device="cpu", pooling="cls")
    mean_out, cls_out = encoder.encode(TEXTS), cls.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(cls_out, axis=1), 1.0, atol=1e-5)
    assert np.abs(mean_out - cls_out).max() > 1e-3
    assert cls.version != encoder.version
    assert cls.version.endswith("/cls") and encoder.version.endswith("/mean")


# --- model lookup ------------------------------------------------------------------------


def test_empty_model_setting_says_how_to_configure_it() -> None:
    with pytest.raises(ModelNotFound, match="STREAM_MODEL"):
        resolve_model("")


def test_missing_directory_names_the_path_and_the_setting() -> None:
    with pytest.raises(ModelNotFound) as info:
        resolve_model("/nonexistent/dir")
    assert "/nonexistent/dir" in str(info.value)
    assert "STREAM_MODEL" in str(info.value)


def test_name_not_in_the_cache_is_not_downloaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    name = "stream-profiles-tests/no-such-model"
    with pytest.raises(ModelNotFound) as info:
        resolve_model(name)
    assert name in str(info.value) and "STREAM_MODEL" in str(info.value)
    with pytest.raises(ModelNotFound):
        TransformerEncoder(name, device="cpu")


def test_directory_without_config_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelNotFound) as info:
        resolve_model(str(tmp_path))
    assert str(tmp_path) in str(info.value) and "config.json" in str(info.value)


def test_model_directory_resolves_to_itself(tiny_model: Path) -> None:
    assert resolve_model(str(tiny_model)) == tiny_model


# --- versions ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from stream.devtools.tinymodel import build_tiny_bert

    root = tmp_path_factory.mktemp("seeds")
    return build_tiny_bert(root / "model", seed=1), build_tiny_bert(root / "other" / "model", seed=2)


def test_version_changes_with_the_weights(two_seeds: tuple[Path, Path]) -> None:
    a, b = (TransformerEncoder(str(p), device="cpu") for p in two_seeds)
    assert a.version != b.version  # same directory name, different weights
    assert np.abs(a.encode(TEXTS) - b.encode(TEXTS)).max() > 1e-3


def test_version_is_stable_for_the_same_model(tiny_model: Path, encoder: TransformerEncoder, tmp_path: Path) -> None:
    again = TransformerEncoder(str(tiny_model), device="cpu")
    assert again.version == encoder.version
    copy = shutil.copytree(tiny_model, tmp_path / tiny_model.name)
    assert TransformerEncoder(str(copy), device="cpu").version == encoder.version  # content, not location


def test_version_changes_when_only_later_layers_change(tiny_model: Path, encoder: TransformerEncoder, tmp_path: Path) -> None:
    import torch
    from transformers import BertModel

    tuned = tmp_path / tiny_model.name
    shutil.copytree(tiny_model, tuned)
    model = BertModel.from_pretrained(tiny_model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # "fine-tuned" last layer, frozen embeddings
        weight = model.encoder.layer[-1].output.dense.weight
        weight.add_(0.5 * torch.randn(weight.shape, generator=generator))
    model.save_pretrained(tuned)
    retuned = TransformerEncoder(str(tuned), device="cpu")
    assert np.abs(retuned.encode(TEXTS) - encoder.encode(TEXTS)).max() > 1e-3  # the embeddings did change
    assert retuned.version != encoder.version
