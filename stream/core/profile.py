"""Profile state and its update rule: plain JSON-able dicts and pure functions.

Everything is computed in event time. Decayed quantities (interest vector, cluster and
category weights, sentiment) are kept relative to the newest event time seen
(``ref_ts``): an event at time t adds with weight ``0.5 ** ((ref_ts - t) / half_life)``,
and a newer event first rescales the sums. Counts, windows and attributes (newest event
time wins) are order-independent too, so late and out-of-order events give the same
profile as in-order delivery.

Updates are idempotent: each carries its source partition and offset, and a profile
skips offsets it has already applied for that source (at-least-once delivery upstream).

Over 300 lines because the update rule and the public view read the same structure: keeping
them together keeps every field's meaning in one place.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from stream.core import churn, rfm
from stream.core.events import format_ts
from stream.core.messages import (
    PROFILE_SCHEMA_VERSION,
    ChurnAlert,
    Update,
    churn_alert,
    encode_interest_vector,
    profile_view,
    unpack_vector,
)

DAY_MS = 86_400_000
EVENT_KINDS = ("review", "search", "order", "user_attributes")  # counted kinds; "forget" is handled by the shell
ATTRIBUTES = ("age_band", "gender", "region", "occupation", "registered_at")
# Bounds on per-user state, whatever a user sends (README "Profile state bounds"). Counts, sums,
# attributes, per-day activity (the longest window), clusters (k) and the interest vector are
# bounded by construction; these cap the rest.
MAX_USER_CATEGORIES = 50  # decayed category weights kept; beyond, the lightest is dropped
MAX_RECENT_ORDERS = 1000  # orders kept for the windowed sums (totals count every order)
MAX_USER_TERMS = 2000  # distinct (cluster, token) pairs remembered per user for forgetting
MAX_TERM_CHARS = 32  # longer tokens are not remembered per user (a keyword is never that long)
MIN_WEIGHT = 1e-9  # decayed weights below this (~30 half-lives) are dropped: no underflow to 0, no 0/0
MAX_CATCH_UP_CHECKS = 400  # churn checks replayed for one user at one update; beyond, only the latest

Profile = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rules:
    """The knobs of the profile model (from Settings)."""

    half_life_ms: float = 30 * DAY_MS
    windows_days: tuple[int, ...] = (30, 90)
    currency: str = "CNY"
    inactivity_days: float = 14.0
    alert_at: float = 0.6
    recover_at: float = 0.4
    top_clusters: int = 3
    generic_weight: float = 0.2  # share of interest an event in a "how it is said" cluster counts with
    check_every_ms: int = DAY_MS  # churn checks at every multiple of this, in event time (ticks)
    lateness_ms: int = 0  # a check at b includes the events up to b + lateness, as stage 1's ticks do
    vector_encoding: str = "float16-base64"  # of the public interest vector (messages.encode_interest_vector)

    @property
    def keep_days(self) -> int:
        return max(*self.windows_days, 90)


def new_profile(user_id: str) -> Profile:
    return {
        "schema_version": PROFILE_SCHEMA_VERSION,
        "user_id": user_id,
        "counts": {kind: 0 for kind in EVENT_KINDS},
        "first_event_ts": None,
        "last_event_ts": None,
        "as_of": None,
        "days": {},
        "active_days": [],  # newest distinct active days, for the user's churn rhythm (bounded)
        "attributes": {},
        "orders": {"total": 0, "cents": 0, "last_ts": None, "recent": []},
        "decayed": {"ref_ts": None, "interest": None, "clusters": {}, "categories": {}, "sentiment": [0.0, 0.0]},
        "sentiment_last": None,
        "reviews_scored": 0,
        "keywords": {},
        "topic_of": None,  # the newest grouping of clusters into topics (from stage 1)
        "topic_keywords": {},
        "terms": {},
        "model_version": None,
        "churn": {"alerted": False, "changed_at": None, "checked": None},
        "applied": {},
    }


def already_applied(profile: Profile, update: Update) -> bool:
    return update["offset"] <= profile["applied"].get(update["source"], -1)


def apply_update(profile: Profile, update: Update, rules: Rules) -> Profile:
    """Profile after ``update``; the same object back when the update was applied before."""
    if already_applied(profile, update):
        return profile
    p = _copy(profile)
    ts, kind, data = int(update["ts"]), update["kind"], update["data"]
    p["counts"][kind] = p["counts"].get(kind, 0) + 1
    p["first_event_ts"] = ts if p["first_event_ts"] is None else min(p["first_event_ts"], ts)
    p["last_event_ts"] = ts if p["last_event_ts"] is None else max(p["last_event_ts"], ts)
    p["as_of"] = max(p["as_of"] or 0, p["last_event_ts"])  # event time only: the batch's watermark depends on read speed
    _count_day(p, ts, kind, rules)
    p["active_days"] = churn.add_active_day(_active_days(p), ts // DAY_MS)
    weight = _advance(p["decayed"], ts, rules.half_life_ms)
    if weight < MIN_WEIGHT:  # an event ~30 half-lives older than the newest adds nothing measurable
        weight = 0.0
    if kind == "user_attributes":
        for name, value in data.items():
            old = p["attributes"].get(name)
            if old is None or (ts, str(value)) > (old[1], str(old[0])):
                p["attributes"][name] = [value, ts]
    if data.get("category") and weight:
        _add_category(p["decayed"]["categories"], data["category"], weight)
    if kind == "order":
        _add_order(p["orders"], ts, int(data["cents"]), rules)
    if data.get("sentiment") is not None:
        s = p["decayed"]["sentiment"]
        if weight:
            p["decayed"]["sentiment"] = [s[0] + weight * data["sentiment"], s[1] + weight]
        p["reviews_scored"] += 1
        if p["sentiment_last"] is None or ts >= p["sentiment_last"][1]:
            p["sentiment_last"] = [data["sentiment"], ts]
    if update.get("embedding") is not None and weight:
        emb = unpack_vector(update["embedding"]).astype(np.float64)
        interest = _interest(p["decayed"])
        p["decayed"]["interest"] = _pack_interest(emb * weight if interest is None else interest + weight * emb)
        cluster = str(update["cluster"])
        interest = weight * (rules.generic_weight if update.get("generic") else 1.0)  # favour what over how
        p["decayed"]["clusters"][cluster] = p["decayed"]["clusters"].get(cluster, 0.0) + interest
        if update.get("keywords") is not None:
            p["keywords"][cluster] = list(update["keywords"])
        if update.get("topic_of") and int(cluster) < len(update["topic_of"]):
            p["topic_of"] = list(update["topic_of"])
            topic = str(update["topic_of"][int(cluster)])
            p.setdefault("topic_keywords", {})[topic] = list(update.get("topic_keywords") or [])
        _add_terms(p, cluster, data.get("tokens") or ())
        p["model_version"] = update["model_version"]
    p["applied"][update["source"]] = int(update["offset"])
    return p


def assess_churn(profile: Profile, as_of: int, rules: Rules) -> churn.ChurnRisk:
    """Churn risk of ``profile`` at event time ``as_of``."""
    day = as_of // DAY_MS
    recent = prior = 0
    for d, kinds in profile["days"].items():
        age = day - int(d)
        n = sum(kinds.values())
        if 0 <= age < 30:
            recent += n
        elif 30 <= age < 90:
            prior += n
    last_order = profile["orders"]["last_ts"]
    return churn.assess(
        churn.ChurnSignals(
            days_silent=max(0.0, (as_of - profile["last_event_ts"]) / DAY_MS),
            events_last_30d=recent,
            events_prior_60d=prior,
            sentiment=_sentiment_average(profile),
            days_since_order=None if last_order is None else max(0.0, (as_of - last_order) / DAY_MS),
            rhythm=churn.Rhythm.from_days(_active_days(profile)),
            days_per_order=(as_of - profile["first_event_ts"]) / DAY_MS / orders if (orders := profile["orders"]["total"]) else None,
        ),
        rules.inactivity_days,
    )


def churn_step(profile: Profile, as_of: int, rules: Rules) -> tuple[Profile, ChurnAlert | None]:
    """Re-assess at ``as_of``; returns the profile (new object only on a transition) and the alert, if any."""
    risk = assess_churn(profile, as_of, rules)
    edge = churn.transition(profile["churn"]["alerted"], risk.score, rules.alert_at, rules.recover_at)
    if edge is None:
        return profile, None
    p = _copy(profile)
    p["churn"] = {**p["churn"], "alerted": edge == "alert", "changed_at": as_of, "checked": as_of}
    p["as_of"] = max(p["as_of"] or 0, as_of)
    alert = churn_alert(
        user_id=profile["user_id"], edge=edge, as_of_ms=as_of, score=risk.score, level=risk.level,
        reasons=list(risk.reasons), last_event_ms=profile["last_event_ts"],
    )
    return p, alert


def check_due(profile: Profile, as_of: int) -> bool:
    """Whether the churn check at boundary ``as_of`` is still to be made for this profile."""
    checked = profile["churn"].get("checked")
    return profile["last_event_ts"] is not None and (checked is None or checked < as_of)


def catch_up(profile: Profile, ts: int, rules: Rules) -> tuple[Profile, list[tuple[int, ChurnAlert, Profile]]]:
    """The churn checks an event at ``ts`` comes after, made before it is applied.

    Returns the profile and, per transition, (as_of, alert, the profile version it was computed from).

    Stage 1 sends the tick for boundary b once every input partition has passed b + lateness,
    so an event later than that may reach stage 2 before the tick (another partition, the same
    batch). Checking here, on the state without the event, gives the result the tick would have
    given had it come first; the tick then skips this user (``checked``). Alerts thus depend on
    event time only, not on how the input was read (a backlog at full speed, or live).
    """
    step = rules.check_every_ms
    last = (ts - rules.lateness_ms - 1) // step * step  # the newest boundary b with b + lateness < ts
    checked = profile["churn"].get("checked")
    if checked is not None and checked >= last:
        return profile, []
    p, alerts = _copy(profile), []
    if p["last_event_ts"] is not None and checked is not None:
        first = checked + step
        if (last - first) // step >= MAX_CATCH_UP_CHECKS:  # silent for ages: the score has long stopped moving
            first = last
        for boundary in range(first, last + 1, step):
            p, alert = churn_step(p, boundary, rules)
            if alert is not None:
                alerts.append((boundary, alert, p))
    p = {**p, "churn": {**p["churn"], "checked": last}}  # the versions in ``alerts`` stay as published
    return p, alerts


def public_view(profile: Profile, *, as_of: int | None, updated_at_ms: int, rules: Rules, digits: int = 4) -> dict[str, Any]:
    """What downstream consumers see on the ``profiles`` topic (schemas/profile.schema.json)."""
    at = max(as_of or 0, profile["as_of"] or 0, profile["last_event_ts"] or 0)
    risk = assess_churn(profile, at, rules) if profile["last_event_ts"] is not None else None
    sections = {
        "basic": {name: (profile["attributes"].get(name) or [None])[0] for name in ATTRIBUTES},
        "consumption": _consumption(profile, at, rules),
        "behaviour": _behaviour(profile, at, rules, digits),
        "interests": _interests(profile, rules, digits),
        "sentiment": {
            "average": None if (avg := _sentiment_average(profile)) is None else round(avg, digits),
            "last": None if profile["sentiment_last"] is None else profile["sentiment_last"][0],
            "reviews_scored": profile["reviews_scored"],
        },
        "churn": {
            "score": None if risk is None else risk.score,
            "level": None if risk is None else risk.level,
            "reasons": [] if risk is None else list(risk.reasons),
            "alerted": profile["churn"]["alerted"],
            "rhythm": churn.rhythm_view(churn.Rhythm.from_days(_active_days(profile)), rules.inactivity_days),
        },
    }
    return profile_view(
        user_id=profile["user_id"], updated_at_ms=updated_at_ms, as_of_ms=at, first_event_ms=profile["first_event_ts"],
        last_event_ms=profile["last_event_ts"], sections=sections, model_version=profile["model_version"],
    )


def _copy(profile: Profile) -> Profile:
    """A copy that shares nothing mutable with ``profile``, so the update rule stays pure for any new field."""
    return _copy_tree(profile)


_IMMUTABLE = (str, int, float, bool, type(None))


def _copy_tree(value: Any) -> Any:
    """``copy.deepcopy`` for a profile's JSON-shaped data at a third of its cost (no memo: a profile has no cycles).

    Dicts and lists are rebuilt, scalars are shared (they are immutable), and anything else
    falls back to ``copy.deepcopy``, so a new field of another type is still never shared.
    """
    if isinstance(value, dict):
        return {k: v if type(v) in _IMMUTABLE else _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _IMMUTABLE else _copy_tree(v) for v in value]
    if isinstance(value, _IMMUTABLE):
        return value
    return copy.deepcopy(value)


def _advance(decayed: dict[str, Any], ts: int, half_life_ms: float) -> float:
    """Weight of an event at ``ts``, rescaling the decayed sums when ``ts`` is the newest time seen.

    Weights that fall below :data:`MIN_WEIGHT` are dropped rather than left to underflow to 0
    (a user back after years with a short half-life), so every kept weight is positive.
    """
    ref = decayed["ref_ts"]
    if ref is not None and ts <= ref:
        return 0.5 ** ((ref - ts) / half_life_ms)
    scale = 1.0 if ref is None else 0.5 ** ((ts - ref) / half_life_ms)
    if scale != 1.0:
        for key in ("clusters", "categories"):
            decayed[key] = {k: w * scale for k, w in decayed[key].items() if w * scale >= MIN_WEIGHT}
        if not decayed["clusters"]:
            decayed["interest"] = None
        elif decayed["interest"] is not None:
            decayed["interest"] = _pack_interest(_interest(decayed) * scale)
        s = decayed["sentiment"]
        decayed["sentiment"] = [s[0] * scale, s[1] * scale] if s[1] * scale >= MIN_WEIGHT else [0.0, 0.0]
    decayed["ref_ts"] = ts
    return 1.0


def _interest(decayed: Mapping[str, Any]) -> np.ndarray | None:
    """The decayed interest sum; a list in state stored before :func:`_pack_interest` existed."""
    value = decayed["interest"]
    if value is None:
        return None
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype="<f8")
    return np.asarray(value, dtype=np.float64)


def _pack_interest(v: np.ndarray) -> str:
    """Base64 of the float64 sum: about half a JSON list, and exact, so the profile stays independent of
    event order (float32 would round differently per order and move the public vector's last digit)."""
    return base64.b64encode(np.asarray(v, dtype="<f8").tobytes()).decode("ascii")


def _add_category(categories: dict[str, float], category: str, weight: float) -> None:
    categories[category] = categories.get(category, 0.0) + weight
    if len(categories) > MAX_USER_CATEGORIES:
        del categories[min(categories, key=lambda c: (categories[c], c))]


def _active_days(p: Profile) -> list[int]:
    """Active day numbers known; a profile stored before ``active_days`` existed starts from its per-day counts."""
    return [*p.get("active_days", ()), *map(int, p["days"])]


def _count_day(p: Profile, ts: int, kind: str, rules: Rules) -> None:
    last_day = p["last_event_ts"] // DAY_MS
    day = ts // DAY_MS
    if day > last_day - rules.keep_days:
        key = str(day)
        p["days"][key] = {**p["days"].get(key, {}), kind: p["days"].get(key, {}).get(kind, 0) + 1}
    p["days"] = {d: k for d, k in p["days"].items() if int(d) > last_day - rules.keep_days}


def _add_terms(p: Profile, cluster: str, tokens: Sequence[str]) -> None:
    """The user's own contribution to a cluster's keyword counts, so that forgetting can take it back."""
    if not tokens:
        return
    mine = dict(p["terms"].get(cluster, {}))
    for token in tokens:
        if len(token) > MAX_TERM_CHARS:
            continue
        if token in mine or sum(len(t) for c, t in p["terms"].items() if c != cluster) + len(mine) < MAX_USER_TERMS:
            mine[token] = mine.get(token, 0) + 1
    p["terms"][cluster] = mine


def _add_order(orders: dict[str, Any], ts: int, cents: int, rules: Rules) -> None:
    orders["total"] += 1
    orders["cents"] += cents
    orders["last_ts"] = ts if orders["last_ts"] is None else max(orders["last_ts"], ts)
    horizon = orders["last_ts"] - rules.keep_days * DAY_MS
    orders["recent"] = sorted(o for o in [*orders["recent"], [ts, cents]] if o[0] > horizon)[-MAX_RECENT_ORDERS:]


def _sentiment_average(profile: Profile) -> float | None:
    total, weight = profile["decayed"]["sentiment"]
    return total / weight if weight > 0 else None


def _money(cents: int) -> str:
    """Exact decimal text, e.g. 12990 -> '129.90'."""
    return str((Decimal(cents) / 100).quantize(Decimal("0.01")))


def _consumption(profile: Profile, at: int, rules: Rules) -> dict[str, Any]:
    orders = profile["orders"]
    windows = {}
    for w in rules.windows_days:
        inside = [cents for ts, cents in orders["recent"] if at - ts < w * DAY_MS]
        windows[f"{w}d"] = {"orders": len(inside), "monetary": _money(sum(inside))}
    recency = None if orders["last_ts"] is None else round(max(0.0, (at - orders["last_ts"]) / DAY_MS), 2)
    longest = windows[f"{max(rules.windows_days)}d"]
    score = rfm.score(recency, longest["orders"], float(longest["monetary"]))
    return {
        "currency": rules.currency,
        "orders_total": orders["total"],
        "monetary_total": _money(orders["cents"]),
        "last_order_ts": None if orders["last_ts"] is None else format_ts(orders["last_ts"]),
        "recency_days": recency,
        "windows": windows,
        "rfm": {"r": score.r, "f": score.f, "m": score.m, "segment": score.segment},
    }


def _behaviour(profile: Profile, at: int, rules: Rules, digits: int) -> dict[str, Any]:
    day = at // DAY_MS
    counted = {w: dict.fromkeys(EVENT_KINDS, 0) for w in rules.windows_days}
    days_in = dict.fromkeys(rules.windows_days, 0)
    for d, kinds in profile["days"].items():  # one pass: this runs for every published profile
        age = day - int(d)
        if age < 0:
            continue
        for w, counts in counted.items():
            if age < w:
                days_in[w] += 1
                for k, n in kinds.items():
                    if k in counts:
                        counts[k] += n
    windows = {f"{w}d": counts for w, counts in counted.items()}
    active = {f"{w}d": n for w, n in days_in.items()}
    longest = max(rules.windows_days)
    cats = profile["decayed"]["categories"]
    total = sum(cats.values())
    preferred = sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return {
        "counts": dict(profile["counts"]),
        "events_total": sum(profile["counts"].values()),
        "windows": windows,
        "weekly_rate": {k: round(n * 7 / longest, digits) for k, n in windows[f"{longest}d"].items()},
        "active_days": active,
        "preferred_categories": [{"category": c, "share": _share(w, total, digits)} for c, w in preferred],
    }


def _share(weight: float, total: float, digits: int) -> float:
    """A decayed weight as a share of the total; decay over years can underflow every weight to 0."""
    return round(weight / total, digits) if total > 0 else 0.0


def _interests(profile: Profile, rules: Rules, digits: int) -> dict[str, Any]:
    weights: Mapping[str, float] = profile["decayed"]["clusters"]
    total = sum(weights.values())
    ranked = sorted(weights, key=lambda c: (-weights[c], int(c)))
    v = _interest(profile["decayed"])
    norm = 0.0 if v is None else float(np.linalg.norm(v))
    unit = v / norm if v is not None and norm else np.zeros(0)
    return {
        "interest_vector": encode_interest_vector(unit, rules.vector_encoding, digits),
        "interest_vector_encoding": rules.vector_encoding,
        "cluster": int(ranked[0]) if ranked else None,
        "cluster_distribution": {c: _share(weights[c], total, digits) for c in sorted(weights, key=int)} if total else {},
        "top_clusters": [
            {"cluster": int(c), "share": _share(weights[c], total, digits), "keywords": profile["keywords"].get(c, [])}
            for c in ranked[: rules.top_clusters]
        ],
        "topics": _top_topics(profile, rules, digits),
    }


def _top_topics(profile: Profile, rules: Rules, digits: int) -> list[dict[str, Any]]:
    """The coarse level: the user's cluster weights summed per topic under the newest grouping, best first.

    Grouping at view time (not per event) keeps shares consistent when the grouping changes.
    """
    topic_of = profile.get("topic_of") or []
    weights: dict[str, float] = {}
    for cluster, w in profile["decayed"]["clusters"].items():
        if int(cluster) < len(topic_of):
            topic = str(topic_of[int(cluster)])
            weights[topic] = weights.get(topic, 0.0) + w
    total = sum(weights.values())
    ranked = sorted(weights, key=lambda t: (-weights[t], int(t)))
    return [
        {"topic": int(t), "share": _share(weights[t], total, digits), "keywords": profile.get("topic_keywords", {}).get(t, [])}
        for t in ranked[: rules.top_clusters]
    ]
