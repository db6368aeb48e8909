"""HTTP client of a worker's API, for the CLI, the demo, tests and benchmarks."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from stream.config import Settings


def http_get(settings: Settings, path: str, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a GET on a worker's API (with the API token when one is set); 0 when nothing answers."""
    request = urllib.request.Request(f"http://{settings.web_host}:{settings.web_port}{path}")
    if settings.api_token:
        request.add_header("Authorization", f"Bearer {settings.api_token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"{}")
        except json.JSONDecodeError:
            return exc.code, {"error": body.decode(errors="replace")}
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, {}
