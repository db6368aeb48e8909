"""Concept drift on purpose: labels A, then B, then A again, replayed with and without count decay.

Measures whether decay (``half_life_events``) lets published clusters follow a new topic
mix, and what it costs when the old topics come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

from stream.devtools.replay import stream_assignments

DEFAULT_DRIFT_HALF_LIFE = 500.0  # events; used for the "with decay" replay when half_life_events is 0


@dataclass(frozen=True)
class PhaseScore:
    """NMI within one drift phase, at stream time."""

    phase: str
    labels: tuple[str, ...]
    texts: int
    offline_nmi: float  # offline KMeans on all embeddings, restricted to this phase's texts
    nmi_no_decay: float
    nmi_decay: float
    settled_no_decay: float  # second half of the phase: after the model had time to adapt
    settled_decay: float


@dataclass(frozen=True)
class DriftResult:
    half_life_events: float
    phases: list[PhaseScore]

    def switches(self) -> list[tuple[str, str, float]]:
        """Per switch (phases 2 and 3): (phase, better setting, NMI gain of decay over no decay).

        A gain within ±0.01 NMI is called a tie ("either").
        """
        out = []
        for p in self.phases[1:]:
            gain = round(p.nmi_decay - p.nmi_no_decay, 4)
            better = "either" if abs(gain) < 0.01 else "decay" if gain > 0 else "no decay"
            out.append((p.phase, better, gain))
        return out

    @property
    def recovers(self) -> str:
        """One sentence: which setting publishes better clusters after each switch.

        >>> p = lambda name, plain, decay: PhaseScore(name, ("a",), 10, 0.5, plain, decay, plain, decay)
        >>> DriftResult(500.0, [p("1: A", 0.4, 0.4), p("2: B", 0.42, 0.47), p("3: A again", 0.36, 0.30)]).recovers
        'A→B: decay (+0.050 NMI); B→A: no decay (-0.060 NMI)'
        """
        names = ("A→B", "B→A")
        return "; ".join(f"{names[i] if i < 2 else phase}: {better} ({gain:+.3f} NMI)"
                         for i, (phase, better, gain) in enumerate(self.switches()))


def drift_phases(labels: Sequence[str]) -> list[tuple[str, tuple[str, ...], list[int]]]:
    """Stream order for a drift replay: labels A (first half, sorted), then B, then A again.

    The texts of A are split in two halves, so phase 3 brings back the *topics* of phase 1
    with texts the model has not seen.

    >>> [(name, ls, idx) for name, ls, idx in drift_phases(["x", "y", "x", "z", "x", "y"])]
    [('1: A', ('x',), [0]), ('2: B', ('y', 'z'), [1, 3, 5]), ('3: A again', ('x',), [2, 4])]
    """
    distinct = sorted(set(labels))
    if len(distinct) < 2:
        raise ValueError("a drift replay needs at least two labels")
    a = tuple(distinct[: len(distinct) // 2])
    b = tuple(distinct[len(distinct) // 2 :])
    in_a = [i for i, label in enumerate(labels) if label in a]
    in_b = [i for i, label in enumerate(labels) if label not in a]
    half = len(in_a) // 2
    return [("1: A", a, in_a[:half]), ("2: B", b, in_b), ("3: A again", a, in_a[half:])]


def drift_replay(
    x: np.ndarray,
    labels: Sequence[str],
    offline: np.ndarray,
    *,
    n_clusters: int,
    warmup: int,
    batch_size: int,
    half_life_events: float,
    reassignment_ratio: float = 0.01,
    seed: int = 0,
) -> DriftResult:
    """Replay A → B → A with and without decay; NMI per phase of the stream-time assignments."""
    phases = drift_phases(labels)
    order = np.array([i for _, _, idx in phases for i in idx], dtype=np.int64)
    warmup = min(warmup, len(phases[0][2]))  # the warm start sees phase 1 only, as a real deployment would
    runs = {
        hl: stream_assignments(
            x[order], n_clusters=n_clusters, warmup=warmup, batch_size=batch_size, half_life_events=hl,
            reassignment_ratio=reassignment_ratio, seed=seed,
        )[0]
        for hl in (0.0, half_life_events)
    }
    y = np.asarray(labels, dtype=object)[order]
    off = offline[order]
    out = []
    start = 0
    for name, phase_labels, idx in phases:
        end = start + len(idx)
        mid = start + len(idx) // 2

        def nmi(pred: np.ndarray, lo: int, hi: int) -> float:
            return round(float(normalized_mutual_info_score(y[lo:hi], pred[lo:hi])), 4) if hi > lo else float("nan")

        out.append(
            PhaseScore(
                phase=name,
                labels=phase_labels,
                texts=len(idx),
                offline_nmi=nmi(off, start, end),
                nmi_no_decay=nmi(runs[0.0], start, end),
                nmi_decay=nmi(runs[half_life_events], start, end),
                settled_no_decay=nmi(runs[0.0], mid, end),
                settled_decay=nmi(runs[half_life_events], mid, end),
            )
        )
        start = end
    return DriftResult(half_life_events=half_life_events, phases=out)
