"""API auth: the bearer token in constant time, and headers a client can mangle."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream.worker.web import authorized


def test_only_the_exact_bearer_token_passes() -> None:
    assert authorized("Bearer s3cret", "s3cret")
    assert not authorized("Bearer s3cre", "s3cret")
    assert not authorized("s3cret", "s3cret")
    assert not authorized(None, "s3cret")


def test_without_a_token_the_api_is_open() -> None:
    assert authorized(None, "") and authorized("anything", "")


@given(st.text())
def test_any_header_text_is_an_answer_not_an_error(header: str) -> None:
    """Non-ASCII (and undecodable, surrogate-escaped) headers give 401, never a server error."""
    assert authorized(header, "s3cret") == (header == "Bearer s3cret")
