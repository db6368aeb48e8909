"""`stream privacy-report`: recall and false positives of PII masking on a labelled corpus.

The corpus (JSON lines: ``text``, expected ``kinds``, the ``secrets`` that must vanish, a
``form`` label, optionally what masking must ``keep``, such as the district before a street)
ships with the package, so the figures the README quotes can be reproduced
from an installed wheel. A positive counts as caught only when every expected kind was found
*and* no secret survives, judged the way an attacker would read the output: NFKC, case-folded,
Chinese numerals as digits, separators ignored, and on the digits alone.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from stream.core.pii import KINDS, alnum_of, digits_of, mask

RECALL_FLOOR = 0.99
FALSE_POSITIVE_CEILING = 0.02


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    kinds: tuple[str, ...]
    secrets: tuple[str, ...]
    form: str = ""
    keep: tuple[str, ...] = ()  # text that must survive masking: over-masking counts as a miss


@dataclass
class Report:
    positives: int = 0
    caught: int = 0
    negatives: int = 0
    false_positives: int = 0
    per_kind: dict[str, list[int]] = field(
        default_factory=dict
    )  # kind -> [caught, total]
    misses: list[tuple[Case, str, str]] = field(
        default_factory=list
    )  # case, masked text, why

    @property
    def recall(self) -> float:
        return self.caught / self.positives if self.positives else 1.0

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / self.negatives if self.negatives else 0.0

    @property
    def ok(self) -> bool:
        return (
            self.recall >= RECALL_FLOOR
            and self.false_positive_rate <= FALSE_POSITIVE_CEILING
        )


def load_corpus(path: Path | None = None) -> list[Case]:
    """The shipped corpus, or ``path`` in the same format."""
    raw = (
        path.read_text(encoding="utf-8")
        if path
        else files("stream")
        .joinpath("resources/pii_corpus.jsonl")
        .read_text(encoding="utf-8")
    )
    cases = []
    for line in raw.splitlines():
        if line.strip():
            row = json.loads(line)
            cases.append(
                Case(
                    row["text"],
                    tuple(row.get("kinds", ())),
                    tuple(row.get("secrets", ())),
                    row.get("form", ""),
                    tuple(row.get("keep", ())),
                )
            )
    return cases


def leaked(secret: str, masked: str) -> bool:
    """Whether ``secret`` can still be read in ``masked``, ignoring case, width, separators and numeral script."""
    digits = digits_of(secret)
    return alnum_of(secret) in alnum_of(masked) or (
        len(digits) >= 5 and digits in digits_of(masked)
    )


def evaluate(cases: Iterable[Case]) -> Report:
    report = Report(per_kind={kind: [0, 0] for kind in KINDS})
    for case in cases:
        masked, found = mask(case.text)
        if not case.kinds:
            report.negatives += 1
            if found:
                report.false_positives += 1
                report.misses.append(
                    (case, masked, f"false positive: {', '.join(found)}")
                )
            continue
        report.positives += 1
        survivors = [s for s in case.secrets if leaked(s, masked)]
        missing = [k for k in case.kinds if k not in found]
        lost = [k for k in case.keep if k not in masked]
        for kind in case.kinds:
            report.per_kind.setdefault(kind, [0, 0])[1] += 1
            report.per_kind[kind][0] += kind in found and not survivors and not lost
        if survivors or missing or lost:
            why = "; ".join(
                filter(
                    None,
                    [
                        missing and f"not found: {', '.join(missing)}",
                        survivors and f"leaked: {', '.join(survivors)}",
                        lost and f"over-masked: {', '.join(lost)}",
                    ],
                )
            )
            report.misses.append((case, masked, why))
        else:
            report.caught += 1
    return report


def render(report: Report) -> str:
    lines = [
        f"positives {report.positives}: recall {report.recall:.4f} (floor {RECALL_FLOOR})",
        f"negatives {report.negatives}: false-positive rate {report.false_positive_rate:.4f} (ceiling {FALSE_POSITIVE_CEILING})",
        "per kind (caught/total):",
    ]
    lines += [
        f"  {kind:<10} {c}/{t}" + (f"  {c / t:.3f}" if t else "")
        for kind, (c, t) in report.per_kind.items()
        if t
    ]
    counts = Counter(
        "miss" if case.kinds else "false positive" for case, _, _ in report.misses
    )
    lines.append(
        f"misses: {counts['miss']}, false positives: {counts['false positive']}"
    )
    for case, masked, why in report.misses:
        lines.append(
            f"  [{case.form or '-'}] {why}\n    in:  {case.text!r}\n    out: {masked!r}"
        )
    lines.append("OK" if report.ok else "BELOW FLOOR")
    return "\n".join(lines)
