"""Progress bars: quiet off a terminal, and chunked encoding gives the same embeddings in order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from stream.devtools.progress import encode_in_chunks, track


class CountingEncoder:
    """Embeds a text as (its length, its first code point); records each call's size."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32).reshape(len(texts), 2)


def test_chunked_encoding_keeps_order_and_rows() -> None:
    texts = [chr(0x4E00 + i) * (1 + i % 7) for i in range(1100)]
    encoder = CountingEncoder()
    rows = encode_in_chunks(encoder, texts, chunk=512)
    assert encoder.calls == [512, 512, 76]
    assert np.array_equal(rows, CountingEncoder().encode(texts))


def test_no_bar_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(track(range(5), 5, "work")) == [0, 1, 2, 3, 4]
    encode_in_chunks(CountingEncoder(), ["好"] * 3)
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""
