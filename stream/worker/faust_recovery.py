"""Keep Faust from losing records around a rebalance (a partition taken over, then never read).

Faust drops records it has already fetched whenever the flow stops mid-batch, and relies on
``Consumer.perform_seek`` (seek every partition back to its committed offset) to read them
again. Three gaps in that; the first two were seen in ``tests/integration/test_shared_model.py``
(a survivor took a killed worker's partitions over and never read them, in about half the runs):

- ``Recovery.on_recovery_completed`` resumes the input partitions while the consumer flow is
  already running, seeks them (a round trip per partition), and only then calls
  ``flow_control.resume()``, which clears every stream's buffer: records fetched in between
  are counted as read and thrown away (faust-streaming issue #596). Here the flow is stopped
  first, so nothing reaches the buffers until Faust has cleared them, seeked, and resumed.
- aiokafka's ``seek_to_committed`` leaves a partition without a committed offset (or at 0)
  where it is, so records dropped from a partition nobody has committed yet (a worker killed
  before its first commit) were never read again. Here such partitions go back to their
  beginning, which is where ``auto_offset_reset="earliest"`` starts them.
- Standby changelog partitions have no committed offset either, and the same clear empties the
  changelog queue: a standby replica could skip records for good (its seen offset moves past
  them). Here every seek also puts each standby partition back to the offset its replica has
  seen (Faust's own ``_seek_offsets``); records up to it are skipped, so re-reading is harmless.

- Faust's livelock detector (every 2.5 commit intervals) reads each assigned partition's
  position from aiokafka, which asserts that it is known; right after a seek or a reset (the
  seeks above, or Faust's own) it is not yet, and the assertion crashed the whole worker (seen
  once in ``tests/integration/test_shared_model.py``, just after "Worker ready"). Here such a
  partition is skipped by that check until its position is known: the check only logs.

Each added seek waits at most ``SEEK_WAIT_SECONDS`` (a reset needs the partition's leader);
what it requested still happens once a leader is back. Should Faust's recovery fail before
resuming (its own seek timed out, which ends its recovery loop), the flow is resumed here rather
than left stopped: the worker then keeps Faust's own behaviour instead of consuming nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import faust
from aiokafka.errors import IllegalStateError
from faust.tables.recovery import RebalanceAgain

log = logging.getLogger(__name__)

SEEK_WAIT_SECONDS = 5.0
_USED = {"recovery": ("on_recovery_completed", "_seek_offsets", "standby_offsets", "standby_tps"),
         "consumer": ("seek_to_committed", "stop_flow", "resume_flow", "_thread", "verify_event_path")}  # what the patch relies on


def keep_records_across_rebalances(app: faust.App) -> None:
    """Patch ``app``'s recovery and consumer instances (not Faust's classes) as described above."""
    recovery, consumer = app.tables.recovery, app.consumer
    for owner, obj in (("recovery", recovery), ("consumer", consumer)):
        missing = [name for name in _USED[owner] if not hasattr(obj, name)]
        if missing:
            raise RuntimeError(f"this Faust has no {owner}.{', '.join(missing)}: update stream.worker.faust_recovery")
    completed = recovery.on_recovery_completed
    seek_to_committed = consumer.seek_to_committed

    async def on_recovery_completed(generation_id: int = 0, *args: Any, **kwargs: Any) -> None:
        consumer.stop_flow()  # Faust's own resume_flow() at the end starts it again, after the clear
        try:
            await completed(generation_id, *args, **kwargs)
        except (RebalanceAgain, IllegalStateError):
            raise  # another rebalance is under way; its recovery resumes the flow
        except BaseException:
            if not app.should_stop:
                log.warning("Faust's recovery failed before resuming the consumer; resuming it")
                consumer.resume_flow()
            raise

    async def seek_to_committed_or_beginning() -> Mapping[Any, int]:
        committed = await seek_to_committed()
        changelogs = app.tables.changelog_topics
        never = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
        standbys = {tp for tp in recovery.standby_tps if tp in committed and tp in recovery.standby_offsets}
        if never:
            await _bounded(consumer._thread.seek_to_beginning(*never), "seek to beginning")  # the thread owns aiokafka
        if standbys:
            await _bounded(recovery._seek_offsets(consumer, standbys, recovery.standby_offsets, "standby"), "standby seek")
        return committed

    verify_event_path = consumer.verify_event_path

    def verify_event_path_once_positioned(now: float, tp: Any) -> None:
        try:
            verify_event_path(now, tp)
        except AssertionError:  # aiokafka: the partition's position is not known yet (a seek or reset pending)
            log.debug("livelock check skipped for %s: its position is not known yet", tp)

    recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
    consumer.seek_to_committed = seek_to_committed_or_beginning  # type: ignore[method-assign]
    consumer.verify_event_path = verify_event_path_once_positioned  # type: ignore[method-assign]


async def _bounded(seek: Any, what: str) -> None:
    try:
        await asyncio.wait_for(seek, SEEK_WAIT_SECONDS)
    except TimeoutError:
        log.warning("%s not confirmed within %.0f s (no partition leader?); it completes when one is back",
                    what, SEEK_WAIT_SECONDS)
