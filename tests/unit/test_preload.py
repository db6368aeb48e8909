"""The preload's log line is what ``bench.recovery`` reads its figures from."""

from __future__ import annotations

from bench.recovery import PRELOAD_LINE
from stream.worker.preload import Loaded


def test_the_benchmark_parses_the_preload_line() -> None:
    match = PRELOAD_LINE.search(Loaded(records=200_000, partitions=4, seconds=1.84).line())
    assert match is not None
    assert (int(match[1]), int(match[2]), float(match[3])) == (200_000, 4, 1.84)
    assert "108,696 records/s" in Loaded(records=200_000, partitions=4, seconds=1.84).line()
    assert Loaded().line().endswith("(0 records/s)")  # no division by zero when nothing was read
