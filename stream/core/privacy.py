"""Personal data at the edge: pseudonymous user ids and scrubbing of free-form fields.

With a key configured, user ids are replaced by HMAC-SHA256 pseudonyms before anything is
stored or published, so the profile service never holds the raw id. Without a key, an id
that itself looks like personal data (a phone number, an e-mail) is refused rather than
stored. Other free-form strings that reach profiles (category, region, occupation) are
dropped when they hold personal data; an event id that does is replaced by the record's position.
These values are identifiers, not prose, so they are read strictly (see :func:`contains_pii`).
"""

from __future__ import annotations

import hashlib
import hmac

from stream.core.pii import mask

PSEUDONYM_PREFIX = "p_"


def pseudonym(user_id: str, key: bytes) -> str:
    """Stable keyed pseudonym: the same id and key always give the same value, nothing reverses it.

    >>> pseudonym("u0001", b"secret")
    'p_b099015c3608f8a1571266883fefed0d'
    """
    return (
        PSEUDONYM_PREFIX
        + hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
    )


def contains_pii(value: str) -> bool:
    """True when strict masking would change ``value`` (any kind in stream.core.pii, in any of its written
    forms): an identifier whose digits, split by any punctuation or letters, make a phone, ID or card
    number is personal data too.

    >>> contains_pii("13812345678"), contains_pii("a.b (at) example (dot) com"), contains_pii("u0001")
    (True, True, False)
    >>> contains_pii("vx: zhang_san88"), contains_pii("京A12345"), contains_pii("iPhone 13")
    (True, True, False)
    >>> contains_pii("138/1234/5678"), contains_pii("u138a1234b5678"), contains_pii("order-2024-0001")
    (True, True, False)
    """
    return bool(mask(value, strict=True)[1])


def scrub(value: str | None) -> str | None:
    """A free-form attribute without personal data: None when masking had to remove something."""
    if value is None:
        return None
    return None if contains_pii(value) else value
