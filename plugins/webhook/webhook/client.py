"""Webhook plugin: signed HTTP delivery with retries (httpx lives in this plugin's venv only)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

SIGNATURE_HEADER = "X-Plugbox-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
BACKOFF_BASE_S = 0.2  # first retry soon: most 5xx are momentary
BACKOFF_CAP_S = 5.0  # never sleep longer than a handler's deadline allows


@dataclass(frozen=True)
class Delivery:
    """What happened to one delivery: every status seen, attempts, and the final verdict."""

    delivered: bool
    attempts: int
    status_codes: list[int]
    error: str | None = None


def sign(secret: str, body: bytes) -> str:
    """The signature header value: `sha256=<hex HMAC of the exact body>`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def encode_payload(payload: dict[str, Any]) -> bytes:
    """Canonical JSON, so a receiver can verify the signature over the bytes it got."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


async def deliver(
    url: str,
    payload: dict[str, Any],
    *,
    secret: str,
    idempotency_key: str,
    max_attempts: int,
    timeout_s: float,
) -> Delivery:
    """POST `payload`, retrying 5xx answers, timeouts and connection errors with backoff."""
    body = encode_payload(payload)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        IDEMPOTENCY_HEADER: idempotency_key,
    }
    statuses: list[int] = []
    error: str | None = None
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        for attempt in range(1, max_attempts + 1):
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                statuses.append(response.status_code)
                if response.status_code < 500:
                    ok = response.status_code < 300
                    failure = None if ok else f"HTTP {response.status_code}"
                    return Delivery(ok, attempt, statuses, failure)
                error = f"HTTP {response.status_code}"
            if attempt < max_attempts:
                await anyio.sleep(_backoff(attempt))
    return Delivery(False, max_attempts, statuses, error)


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))
