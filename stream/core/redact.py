"""Masking of decoded values: JSON fields, dead-letter payloads and keys.

Masking raw bytes misses what an encoder hid: ``json.dumps`` writes ``"\\u7535\\u8bdd13812345678"``
by default, and a phone number in a key or an attribute never passes through text cleaning.
Everything here works on decoded values: every string (object keys included) and every number
is masked with :func:`stream.core.pii.mask` in strict mode (digits split by , / : count as one
number: a dead letter is read by people, over-masking costs nothing); what cannot be decoded is
unescaped as far as possible and masked as text. Output sizes are capped and the cost is bounded by the cap, so a
megabyte of digits cannot stall a worker; a secret cut by the cap is dropped, never half-shown.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream.core.pii import KINDS, PLACEHOLDERS, find, mask
from stream.core.privacy import pseudonym

TEXT_LIMIT = 16_384  # characters of a dead letter's value_text: well under the 1 MB producer limit
ERROR_LIMIT = 1_024
TRUNCATION_MARK = "…[TRUNCATED]"
_MARGIN = (
    512  # longer than any span pii.find can match: what straddles a cut lies within it
)
_ESCAPE = re.compile(
    r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
    r"|\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|\\U([0-9a-fA-F]{8})|\\([\"'\\/bfnrt])"
)
_SIMPLE = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True, slots=True)
class Masked:
    """A masked value, the kinds found and whether the size cap cut it."""

    value: Any
    kinds: tuple[str, ...]
    truncated: bool = False


def mask_head(text: str, limit: int, *, strict: bool = True) -> Masked:
    """``text`` masked, at most ``limit`` characters of it, at a cost bounded by ``limit``.

    Only a window of ``limit`` + margin characters is scanned; the margin is then dropped, so a
    secret that the window cut in two (and that could not be recognised) is not in the output.
    """
    if len(text) <= limit:
        masked, kinds = mask(text, strict=strict)
        if len(masked) <= limit:
            return Masked(masked, kinds)
    window = text[: limit + _MARGIN]
    safe = len(window) if len(window) == len(text) else len(window) - _MARGIN
    out: list[str] = []
    found: set[str] = set()
    last = 0
    for start, end, kind in find(window, strict=strict):
        if start >= safe:
            break
        out += (window[last:start], PLACEHOLDERS[kind])
        found.add(kind)
        last = end
    if last < safe:
        out.append(window[last:safe])
    masked = "".join(out)[:limit]
    return Masked(masked, tuple(k for k in KINDS if k in found), truncated=True)


def unescape(text: str) -> str:
    r"""Decode JSON escapes (``\uXXXX`` with surrogate pairs joined, ``\n``, ``\t``...) and Python's
    (``\xa0``, ``\U0001d7cf``: what ``repr`` writes in an error message), up to three levels deep, so that
    ``142\n6104\t3176`` or ``'138\xa01234\xa05678'`` is read as the number it is.

    >>> unescape(r'\u7535\u8bdd 142\t6104 \ud83d\ude00 \" 1\xa02')
    '电话 142\t6104 😀 " 1\xa02'
    """

    def one(m: re.Match[str]) -> str:
        if m[6]:
            return _SIMPLE[m[6]]
        code = m[3] or m[4] or m[5]
        if code:
            return chr(min(int(code, 16), 0x10FFFF))
        return chr(0x10000 + ((int(m[1], 16) - 0xD800) << 10) + (int(m[2], 16) - 0xDC00))

    for _ in range(3):  # escaped more than once (a JSON string inside a string inside JSON)
        decoded = _ESCAPE.sub(one, text)
        if decoded == text:
            break
        text = decoded
    return text


class _Budget:
    """Characters of masked output still allowed; strings past it are emptied (and marked)."""

    def __init__(self, limit: int, strict: bool) -> None:
        self.left = limit
        self.strict = strict
        self.kinds: set[str] = set()
        self.truncated = False

    def text(self, value: str) -> str:
        result = mask_head(value, max(self.left, 0), strict=self.strict)
        if "\\" in value:  # escaped text (JSON sent as a string): masked as read decoded, kept as is if clean
            decoded = unescape(value)
            if decoded != value and (hidden := mask_head(decoded, max(self.left, 0), strict=self.strict)).kinds:
                result = Masked(encodable(hidden.value), hidden.kinds, hidden.truncated)
        self.left -= len(result.value)
        self.kinds.update(result.kinds)
        self.truncated |= result.truncated
        return result.value


def _mask_tree(value: Any, budget: _Budget, numbers: bool) -> Any:
    if isinstance(value, str):
        return budget.text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        if not numbers:
            return value
        # A phone or QQ number sent as a JSON number is still one.
        literal = json.dumps(value)
        masked = budget.text(literal)
        return value if masked == literal else masked
    if isinstance(value, Mapping):
        return {
            budget.text(str(k)): _mask_tree(v, budget, numbers)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask_tree(v, budget, numbers) for v in value]
    return budget.text(str(value))


def mask_tree(value: Any, limit: int = TEXT_LIMIT, *, numbers: bool = True, strict: bool = True) -> Masked:
    """A decoded JSON value with every key, string and (unless ``numbers`` is false, where a number must
    stay one) number masked, within ``limit`` characters of strings; ``strict`` as in
    :func:`stream.core.pii.find`."""
    budget = _Budget(limit, strict)
    masked = _mask_tree(value, budget, numbers)
    return Masked(
        masked, tuple(k for k in KINDS if k in budget.kinds), budget.truncated
    )


def redact_bytes(raw: bytes, limit: int = TEXT_LIMIT) -> Masked:
    """A record value as masked text for a dead letter: re-serialised JSON when it decodes, else
    the UTF-8 text with escapes decoded; at most ``limit`` characters (plus the truncation mark)."""
    text = _decode_text(raw)
    try:
        masked = mask_tree(json.loads(text), limit)
    except (ValueError, RecursionError):
        result = mask_head(unescape(text), limit)
    else:
        serialised = json.dumps(masked.value, ensure_ascii=False, separators=(",", ":"))
        head = serialised[:limit]
        result = Masked(
            head, masked.kinds, masked.truncated or len(head) < len(serialised)
        )
    return Masked(
        encodable(result.value + TRUNCATION_MARK if result.truncated else result.value),
        result.kinds,
        result.truncated,
    )


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _decode_text(raw: bytes) -> str:
    """``raw`` as text: the codec its byte order mark names, else UTF-8, else UTF-16 when zero bytes say so.

    Read as UTF-8, UTF-16 leaves each character's low byte as a control character (full-width
    ``１３８`` becomes ``\\x11\\ufffd\\x13\\ufffd\\x18``), from which a number can be rebuilt but not
    recognised; control characters left after decoding are replaced for the same reason. Valid
    UTF-8 stays UTF-8 (a C string's trailing zero byte) unless it is ASCII in UTF-16: a zero byte
    after (or before) nearly every other byte.
    """
    codecs_to_try = [codec for bom, codec in _BOMS if raw.startswith(bom)][:1]
    zeros = (raw[0::2].count(0), raw[1::2].count(0))
    utf16 = "utf-16-be" if zeros[0] > zeros[1] else "utf-16-le"
    if not codecs_to_try:
        ascii_in_utf16 = max(zeros) * 2 >= len(raw) * 0.9 > 0
        codecs_to_try = [utf16, "utf-8"] if ascii_in_utf16 else ["utf-8", utf16] if any(zeros) else ["utf-8"]
    for codec in codecs_to_try:
        try:
            return _CONTROL.sub("\ufffd", raw.decode(codec))
        except UnicodeDecodeError:
            continue
    return _CONTROL.sub("\ufffd", raw.decode("utf-8", errors="replace"))


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """``text`` with lone surrogates (from ``\\ud800`` escapes or undecodable input) as U+FFFD.

    A dead letter must always serialise: orjson, Faust's JSON codec, refuses lone surrogates,
    and one such record would otherwise stop the worker each time it is redelivered.

    >>> encodable("a" + chr(0xD800) + "b") == "a" + chr(0xFFFD) + "b"
    True
    """
    return _LONE_SURROGATE.sub("\ufffd", text)


def redact_key(key: bytes | None, pseudonym_key: bytes | None) -> str | None:
    """A record key as a dead letter may carry it: its pseudonym when a key is configured, else nothing.

    >>> redact_key(b"13812345678", None) is None, redact_key(b"u1", b"k") == pseudonym("u1", b"k")
    (True, True)
    """
    if key is None or not pseudonym_key:
        return None
    return pseudonym(key.decode("utf-8", errors="replace"), pseudonym_key)
