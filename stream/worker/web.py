"""The worker's HTTP API: profile lookups, cluster summary, health, metrics, the dashboard; bearer-token auth.

Every view needs ``Authorization: Bearer <STREAM_API_TOKEN>`` when a token is set, except
``/health``, which without it says only whether the worker is ready. Profile lookups are
routed by Faust to the worker that owns the user's table partition and answer 503 while
tables are being recovered. Unknown and forgotten users get the same 404, so the API does
not reveal who asked to be forgotten; raw-id lookups (which hash any guess) are rate-limited.
The dashboard's page and scripts hold no data and load without a token; the JSON it polls
(``/dashboard/data``, ``/clusters``, ``/alerts/recent``, ``/profiles/...``) and ``/metrics`` need it.
"""

from __future__ import annotations

import hmac
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.web import Request, Response, View

from stream.core.events import format_ts
from stream.core.privacy import pseudonym
from stream.core.ratelimit import RateLimiter
from stream.core.stage2 import ProfileStage
from stream.worker.dashboard import RecentAlerts, asset
from stream.worker.metrics import Metrics

PROFILE_COUNT_SECONDS = 10.0  # counting the table walks its keys: at most this often
MAX_PROBE_TEXTS = 32  # GET /model/assign: texts per request (each is encoded on the worker's encoder thread)
MAX_PROBE_CHARS = 2000


def authorized(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries the token; any header is fine when no token is set.

    Compared as bytes in constant time: a header with non-ASCII characters is simply wrong.

    >>> authorized("Bearer s3cret", "s3cret"), authorized("Bearer 秘密", "s3cret"), authorized(None, "")
    (True, False, True)
    """
    if not token:
        return True
    given = (header or "").encode("utf-8", errors="surrogateescape")
    return hmac.compare_digest(given, f"Bearer {token}".encode())


def _unauthorized(web: View) -> Response:
    return web.json({"error": "unauthorized", "detail": "send Authorization: Bearer <STREAM_API_TOKEN>"}, status=401)


def register_views(
    app: faust.App,
    *,
    table: faust.TableT,
    profiles: ProfileStage,
    api_token: str,
    pseudonym_key: str,
    raw_lookups_per_second: float,
    ready: Callable[[], bool],
    watermark: Callable[[], int],
    clusters: Callable[[], dict[str, Any]],
    assign: Callable[[list[str], str], Awaitable[dict[str, Any]]],
    health: Callable[[], dict[str, Any]],
    metrics: Metrics,
    recent_alerts: RecentAlerts,
    profile_count: Callable[[], int],
) -> None:
    """Declare the views on ``app``; the callables read the stages' current state."""
    raw_lookups = RateLimiter(raw_lookups_per_second, burst=10.0, clock=time.monotonic)
    counted_at = -PROFILE_COUNT_SECONDS

    def count_profiles() -> None:
        nonlocal counted_at
        if time.monotonic() - counted_at >= PROFILE_COUNT_SECONDS:
            metrics.set_profiles(profile_count())
            counted_at = time.monotonic()

    def allowed(request: Request) -> bool:
        try:
            header = request.headers.get("Authorization")
        except UnicodeDecodeError:
            return False
        return authorized(header, api_token)

    @app.page("/profiles/{user_id}")
    @app.table_route(table=table, match_info="user_id")
    async def profile_view(web: View, request: Request, user_id: str) -> Response:
        if not allowed(request):
            return _unauthorized(web)
        if not ready():
            return web.json({"error": "recovering", "detail": "tables are being restored; retry shortly"}, status=503,
                            headers={"Retry-After": "2"})
        view = profiles.view(user_id, as_of=watermark())
        if view is None:
            return web.json({"error": "not_found", "detail": "no profile for this user"}, status=404)
        return web.json(view)

    @app.page("/users/{raw_id}/profile")
    async def raw_id_view(web: View, request: Request, raw_id: str) -> Response:
        """Lookup by the raw user id: hashed here, then routed like any profile lookup."""
        if not allowed(request):
            return _unauthorized(web)
        ok, wait = raw_lookups.allow(str(getattr(request, "remote", None) or "unknown"))
        if not ok:
            return web.json({"error": "rate_limited", "detail": "too many raw-id lookups; retry later"}, status=429,
                            headers={"Retry-After": str(max(1, round(wait)))})
        target = pseudonym(raw_id, pseudonym_key.encode()) if pseudonym_key else raw_id
        return web.bytes(b"", status=307, headers={"Location": f"/profiles/{urllib.parse.quote(target)}"})

    @app.page("/clusters")
    async def clusters_view(web: View, request: Request) -> Response:
        if not allowed(request):
            return _unauthorized(web)
        return web.json(clusters())

    @app.page("/model/assign")
    async def assign_view(web: View, request: Request) -> Response:
        """``?text=…&text=…[&kind=search]``: which clusters this worker's model version gives these texts."""
        if not allowed(request):
            return _unauthorized(web)
        texts = request.query.getall("text", [])
        kind = request.query.get("kind", "review")
        if not texts or len(texts) > MAX_PROBE_TEXTS or kind not in ("review", "search") or any(
                len(t) > MAX_PROBE_CHARS for t in texts):
            return web.json({"error": "bad_request", "detail": f"1 to {MAX_PROBE_TEXTS} `text` parameters of at most "
                             f"{MAX_PROBE_CHARS} characters, kind review or search"}, status=400)
        return web.json(await assign(texts, kind))

    @app.page("/health")
    async def health_view(web: View, request: Request) -> Response:
        if not allowed(request):
            return web.json({"status": "ok", "ready": ready()})
        return web.json({"status": "ok", "ready": ready(), **health()})

    @app.page("/metrics")
    async def metrics_view(web: View, request: Request) -> Response:
        if not allowed(request):
            return _unauthorized(web)
        count_profiles()
        body, content_type = metrics.render()
        return web.bytes(body, headers={"Content-Type": content_type})

    @app.page("/alerts/recent")
    async def recent_alerts_view(web: View, request: Request) -> Response:
        if not allowed(request):
            return _unauthorized(web)
        return web.json({"alerts": recent_alerts.newest()})

    @app.page("/dashboard/data")
    async def dashboard_data_view(web: View, request: Request) -> Response:
        if not allowed(request):
            return _unauthorized(web)
        count_profiles()
        mark = watermark()
        return web.json({**metrics.summary(), "ready": ready(), "watermark": format_ts(mark) if mark else None})

    @app.page("/dashboard")
    async def dashboard_redirect_view(web: View, request: Request) -> Response:
        return web.bytes(b"", status=308, headers={"Location": "/dashboard/"})

    @app.page("/dashboard/")
    async def dashboard_view(web: View, request: Request) -> Response:
        page, content_type = asset("index.html")
        return web.bytes(page, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})

    @app.page("/dashboard/assets/{name}")
    async def dashboard_asset_view(web: View, request: Request, name: str) -> Response:
        found = asset(name)
        if found is None:
            return web.json({"error": "not_found"}, status=404)
        return web.bytes(found[0], headers={"Content-Type": found[1]})
