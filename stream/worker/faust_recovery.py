"""Keep Faust from losing input records around a rebalance (a partition taken over, then never read).

Faust drops records it has already fetched whenever the flow stops mid-batch, and relies on
``Consumer.perform_seek`` (seek every partition back to its committed offset) to read them
again. Two gaps in that, both seen in ``tests/integration/test_shared_model.py`` (a survivor
took a killed worker's partitions over and never read them, in about half the runs):

- ``Recovery.on_recovery_completed`` resumes the input partitions while the consumer flow is
  already running, seeks them (a round trip per partition), and only then calls
  ``flow_control.resume()``, which clears every stream's buffer: records fetched in between
  are counted as read and thrown away (faust-streaming issue #596). Here the flow is stopped
  first, so nothing reaches the buffers until Faust has cleared them, seeked, and resumed.
- aiokafka's ``seek_to_committed`` leaves a partition without a committed offset (or at 0)
  where it is, so records dropped from a partition nobody has committed yet (a worker killed
  before its first commit) were never read again. Here such partitions go back to their
  beginning, which is where ``auto_offset_reset="earliest"`` starts them. Changelog partitions
  are left alone: table recovery positions them itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust


def keep_records_across_rebalances(app: faust.App) -> None:
    """Patch ``app``'s recovery and consumer instances (not Faust's classes) as described above."""
    recovery = app.tables.recovery
    consumer = app.consumer
    completed = recovery.on_recovery_completed
    seek_to_committed = consumer.seek_to_committed

    async def on_recovery_completed(generation_id: int = 0, *args: Any, **kwargs: Any) -> None:
        consumer.stop_flow()  # Faust's own resume_flow() at the end starts it again, after the clear
        await completed(generation_id, *args, **kwargs)

    async def seek_to_committed_or_beginning() -> Mapping[Any, int]:
        committed = await seek_to_committed()
        changelogs = app.tables.changelog_topics
        never = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
        if never:
            await consumer._thread.seek_to_beginning(*never)  # the consumer thread owns the aiokafka client
        return committed

    recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
    consumer.seek_to_committed = seek_to_committed_or_beginning  # type: ignore[method-assign]
