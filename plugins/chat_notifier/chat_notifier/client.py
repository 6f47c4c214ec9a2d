"""Chat notifier plugin: one JSON POST with the standard library (no third-party client)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import anyio

POST_TIMEOUT_S = 10.0  # chat webhooks answer in well under a second when healthy


async def post_json(url: str, payload: dict[str, Any], *, idempotency_key: str) -> int | str:
    """POST `payload`; the HTTP status, or the connection error's text (urllib in a thread)."""
    try:
        return await anyio.to_thread.run_sync(_post, url, payload, idempotency_key)
    except (urllib.error.URLError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _post(url: str, payload: dict[str, Any], idempotency_key: str) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=POST_TIMEOUT_S) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
