"""Webhook plugin: contract expectations, and a signed delivery with retries to a local receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import anyio
import pytest

from sdk.testing import check_package, import_plugin

PLUGIN = Path(__file__).resolve().parents[1]


def test_webhook_meets_the_contract() -> None:
    check_package(PLUGIN).raise_for_failures()


@pytest.mark.anyio
async def test_delivery_is_signed_retried_on_5xx_and_records_status_codes() -> None:
    import_plugin(PLUGIN)
    from webhook.client import SIGNATURE_HEADER, deliver

    seen: list[tuple[bytes, dict[str, str]]] = []
    statuses = [503, 200]

    async def handle(stream: anyio.abc.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
        head, body = data.split(b"\r\n\r\n", 1)
        headers = dict(
            line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line
        )
        length = int(headers.get("content-length", headers.get("Content-Length", "0")))
        while len(body) < length:
            body += await stream.receive()
        seen.append((body, {k.lower(): v for k, v in headers.items()}))
        status = statuses.pop(0)
        await stream.send(
            f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
        )
        await stream.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    with anyio.fail_after(20):
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, handle)
            result = await deliver(
                f"http://127.0.0.1:{port}/hook",
                {"run": 1},
                secret="whsec-test-123",
                idempotency_key="key-1",
                max_attempts=3,
                timeout_s=5,
            )
            group.cancel_scope.cancel()
    assert result.delivered
    assert result.status_codes == [503, 200]
    body, headers = seen[-1]
    assert json.loads(body) == {"run": 1}
    expected = "sha256=" + hmac.new(b"whsec-test-123", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER.lower()] == expected
    assert headers["idempotency-key"] == "key-1"
