"""Text cleaning for review and search text before it reaches the encoder and keyword extraction.

Everything here is pure and deterministic, so the same event always yields the same
embedding input, and personal data is masked before any text leaves the ingest step.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import jieba

from stream.core.pii import DEFAULT_IGNORABLE, PLACEHOLDERS, mask


@dataclass(frozen=True, slots=True)
class CleanText:
    """One cleaned text; immutable so batches can share results for duplicate inputs."""

    text: str  # what the sentence encoder sees
    tokens: tuple[str, ...]  # keyword candidates for per-cluster keywords
    pii: tuple[str, ...]  # kinds masked, for metrics; never the values


# Checked after NFKC, which already turned full-width ，！？；：（） and … into ASCII.
_KEEP_PUNCT = frozenset("。、“”‘’《》【】「」『』—·,.!?;:'\"()-%+@_/#&*")
_EMOJI_BLOCKS = ((0x2600, 0x27BF), (0x1F000, 0x1FAFF))
_EMOJI_EXTRA = frozenset("⭐⭕⌚⌛⏰⏳")
_NOT_EMOJI = frozenset("★☆")
_INVISIBLE = frozenset(("Cc", "Cf", "Cs"))
_KEEP_CATEGORIES = frozenset(("Nd", "Nl", "Mn", "Mc"))


class _CharTable(dict[int, str | None]):
    """`str.translate` table that classifies each code point once, then answers from C."""

    def __init__(self, classify: Callable[[int], str | None]) -> None:
        super().__init__()
        self._classify = classify

    def __missing__(self, cp: int) -> str | None:
        out = self._classify(cp)
        if cp < 0x20000:  # bounds the cache; rarer planes are simply recomputed
            self[cp] = out
        return out


def _before_nfkc(cp: int) -> str | None:
    """Drop invisible characters (and lone surrogates) before NFKC so removing them cannot create new compositions.

    Invisible means format and control characters and every Default_Ignorable_Code_Point: joiners,
    variation selectors, and the Hangul fillers, which are letters that render as nothing.
    """
    ch = chr(cp)
    if ch.isspace():
        return " "
    if unicodedata.category(ch) in _INVISIBLE or cp in DEFAULT_IGNORABLE:
        return None
    return ch


def _after_nfkc(cp: int) -> str:
    ch = chr(cp)
    category = unicodedata.category(ch)
    emoji = category in ("So", "Sk") and any(lo <= cp <= hi for lo, hi in _EMOJI_BLOCKS)
    if (
        category[0] == "L"
        or category in _KEEP_CATEGORIES
        or ch in _KEEP_PUNCT
        or ch in _EMOJI_EXTRA
        or (emoji and ch not in _NOT_EMOJI)
    ):
        return ch
    return " "


_PRE = _CharTable(_before_nfkc)
_POST = _CharTable(_after_nfkc)
_PLACEHOLDER_RE = re.compile("(" + "|".join(map(re.escape, PLACEHOLDERS.values())) + ")")
_RUNS = re.compile(r"([^\w\s])\1{3,}")


def normalize(text: str) -> str:
    """Canonical form for the encoder; full-width digits become ASCII so masking can see them."""
    text = unicodedata.normalize("NFKC", text.translate(_PRE))
    # Placeholders survive so that cleaning already-cleaned text is a no-op.
    parts = _PLACEHOLDER_RE.split(text)
    text = "".join(part if i % 2 else part.translate(_POST) for i, part in enumerate(parts))
    return " ".join(_RUNS.sub(r"\1\1\1", text).split())


def mask_pii(text: str) -> tuple[str, tuple[str, ...]]:
    """Mask personal data (see stream.core.pii); kinds are returned for metrics, never the values."""
    return mask(text)


@cache
def stopwords() -> frozenset[str]:
    """Shipped with the package so keyword extraction is identical on every worker."""
    raw = files("stream").joinpath("resources/stopwords_zh.txt").read_text(encoding="utf-8")
    return frozenset(w for line in raw.splitlines() if (w := line.split("#", 1)[0].strip().lower()))


@cache
def _init_jieba() -> None:
    """Loading the dictionary takes about a second, so pay for it only when tokens are needed."""
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()


_NUMBER = re.compile(r"[\d.,:%+\-/]+")


def _is_keyword(word: str, stop: frozenset[str]) -> bool:
    return (
        bool(word)
        and word not in stop
        and any(ch.isalnum() for ch in word)
        and not _NUMBER.fullmatch(word)
        and not (len(word) == 1 and "a" <= word <= "z")
    )


def clean(text: str) -> CleanText:
    """Mask, normalise, mask again and tokenise; tokens never contain placeholders because jieba never sees them.

    Masking the raw text first catches forms that normalising would blur (``a<at>b<dot>org``
    becomes ``a at b dot org``); masking the normalised text catches what it reveals (digits
    split by symbols it turns into spaces).
    """
    first, raw_kinds = mask_pii(text)
    masked, kinds = mask_pii(normalize(first))
    pii = tuple(k for k in PLACEHOLDERS if k in raw_kinds or k in kinds)
    _init_jieba()
    stop = stopwords()
    words = (w.strip().lower() for w in jieba.lcut(_PLACEHOLDER_RE.sub(" ", masked)))
    return CleanText(masked, tuple(w for w in words if _is_keyword(w, stop)), pii)


def clean_many(texts: Sequence[str]) -> list[CleanText]:
    """Batches repeat texts (default reviews like 默认好评); each distinct text is cleaned once."""
    done: dict[str, CleanText] = {}
    return [done[t] if t in done else done.setdefault(t, clean(t)) for t in texts]
