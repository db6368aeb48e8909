"""Tests for stream.worker.checkpoint: a reader sees the old or the new content, never a torn or stray file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stream.worker import checkpoint
from stream.worker.checkpoint import read, write_atomic


def test_write_then_read_returns_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "state.ckpt"
    write_atomic(path, b"\x00\x01snapshot\xff")
    assert read(path) == b"\x00\x01snapshot\xff"


def test_write_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.ckpt"
    write_atomic(path, b"x")
    assert read(path) == b"x"


def test_empty_content_is_stored_not_confused_with_missing(tmp_path: Path) -> None:
    path = tmp_path / "state.ckpt"
    write_atomic(path, b"")
    assert read(path) == b""


def test_overwrite_keeps_exactly_one_file_and_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "state.ckpt"
    for i in range(5):
        write_atomic(path, f"version {i}".encode() * (i + 1))
    assert read(path) == b"version 4" * 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.ckpt"]


def test_read_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert read(tmp_path / "never-written.ckpt") is None
    assert read(tmp_path / "no-such-dir" / "x.ckpt") is None


def test_failed_replace_leaves_old_content_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.ckpt"
    write_atomic(path, b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, b"new content that never lands")
    assert read(path) == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.ckpt"]


def test_failed_write_of_a_new_file_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.ckpt"

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(checkpoint.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_atomic(path, b"data")
    assert read(path) is None
    assert list(tmp_path.iterdir()) == []


def test_interrupt_during_write_is_cleaned_up_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (a BaseException) in the middle of a write must not leave a temp file behind."""
    path = tmp_path / "state.ckpt"
    write_atomic(path, b"old")

    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, b"new")
    assert read(path) == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.ckpt"]


def test_the_new_file_is_in_place_when_write_returns(tmp_path: Path) -> None:
    path = tmp_path / "state.ckpt"
    write_atomic(path, b"one")
    inode_before = os.stat(path).st_ino
    write_atomic(path, b"two")
    assert read(path) == b"two"
    assert os.stat(path).st_ino != inode_before  # replaced by rename, not rewritten in place
