"""What a model directory says about how to feed it: the text prefixes it was trained with.

e5 models expect ``passage: `` before documents and ``query: `` before search queries;
other encoders take text as is. A model built by ``stream model e5`` records its prefixes
in ``stream-model.json``; for any other model the name decides. This is the one place
that knows, so the worker, ``stream eval`` and the benchmarks always agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

META_FILE = "stream-model.json"
E5_PREFIXES = {"review": "passage: ", "search": "query: "}


@dataclass(frozen=True, slots=True)
class Prefixes:
    """Text put before reviews (documents) and before search queries."""

    review: str = ""
    search: str = ""


def read_meta(model_dir: str | Path) -> dict[str, object]:
    """The directory's ``stream-model.json``, or ``{}`` when it has none (any ordinary HF model)."""
    path = Path(model_dir).expanduser() / META_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def write_meta(model_dir: str | Path, meta: dict[str, object]) -> Path:
    path = Path(model_dir) / META_FILE
    path.write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def model_prefixes(model: str | Path, review: str | None = None, search: str | None = None) -> Prefixes:
    """Prefixes for ``model`` (a directory or a model name): explicit values win, then the
    directory's metadata, then the name (``e5`` in it means the e5 prefixes), else none.

    >>> model_prefixes("intfloat/multilingual-e5-small")
    Prefixes(review='passage: ', search='query: ')
    >>> model_prefixes("BAAI/bge-small-zh-v1.5"), model_prefixes("e5-small", review="")
    (Prefixes(review='', search=''), Prefixes(review='', search='query: '))
    """
    known = read_meta(model).get("prefixes") if model and Path(model).expanduser().is_dir() else None
    if not isinstance(known, dict):
        known = E5_PREFIXES if "e5" in Path(str(model)).name.lower() else {}
    return Prefixes(
        review=known.get("review", "") if review is None else review,
        search=known.get("search", "") if search is None else search,
    )
