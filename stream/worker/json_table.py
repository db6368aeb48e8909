"""A Faust table of raw bytes seen as a mapping of JSON values, encoded once per write.

With Faust's ``json`` value serializer a table write encodes the value twice (once for the
changelog record, once for RocksDB) through Faust's codec layers. A ``raw`` table given bytes
encoded here stores and sends the same bytes, so the changelog and RocksDB hold exactly what they
held with the ``json`` serializer (orjson, non-string keys as strings) and existing state reads
back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson

JSON_OPTIONS = orjson.OPT_NON_STR_KEYS  # what Faust's json codec passes orjson for a profile's plain data


def dumps(value: Any) -> bytes:
    """The JSON bytes of a table value or an output message."""
    return orjson.dumps(value, option=JSON_OPTIONS)


class JsonValues(MutableMapping[str, Any]):
    """``table`` (user id -> JSON bytes, ``default=None``) as user id -> decoded value."""

    def __init__(self, table: MutableMapping[str, bytes | None]) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        value = self.table[key]
        if value is None:
            raise KeyError(key)
        return orjson.loads(value)

    def get(self, key: str, default: Any = None) -> Any:
        value = self.table.get(key)
        return default if value is None else orjson.loads(value)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key] = dumps(value)

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __contains__(self, key: object) -> bool:
        return key in self.table

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]  # one pass over the store, not a get per key
        return ((key, orjson.loads(value)) for key, value in self.table.items() if value is not None)
