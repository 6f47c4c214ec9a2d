"""The dashboard in a real browser: Debian's chromium, driven by Playwright, against a real server.

Set PLUGBOX_UI_SCREENSHOTS=<dir> to write a PNG of each page there (docs/ui/ holds the ones the
docs show).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from host import PluginHost
from host.completion import SQLiteRunStore, run_integrations
from sdk.protocol import Calls

from ._helpers import chatty_params, ops_host, served

pytestmark = pytest.mark.anyio
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright_api = pytest.importorskip("playwright.async_api")
if CHROMIUM is None:
    pytest.skip(
        "chromium not installed (tools/system-deps.sh installs it as root on Debian)",
        allow_module_level=True,
    )
# As root, Chromium refuses its own sandbox; the rest keeps it quiet and offline.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = os.environ.get("PLUGBOX_UI_SCREENSHOTS")
if SHOTS:
    Path(SHOTS).mkdir(parents=True, exist_ok=True)


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[tuple[str, PluginHost, int]]:
    async with (
        ops_host(tmp_path / "data") as plugins,
        SQLiteRunStore(tmp_path / "runs.db") as store,
    ):
        nodes = [{"id": "n1", "type": "chatty", "data": {"name": "n1", "action": "raise"}}]
        run_id = await store.create_run(workflow_definition={"nodes": nodes})
        await run_integrations(run_id, plugins=plugins, store=store, sleep=_no_sleep)
        await plugins.get("chatty").call(Calls.COMPLETION_RUN, chatty_params("log"))
        async with served(plugins, store) as base:
            yield base, plugins, run_id


async def test_the_dashboard_pages_load_restart_works_and_a_traceback_is_visible(
    dashboard: tuple[str, PluginHost, int],
) -> None:
    base, plugins, run_id = dashboard
    async with playwright_api.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        try:
            await page.goto(f"{base}/ui")
            assert page.url.endswith("/ui/plugins")
            assert "chatty" in await page.inner_text("#plugins")
            await _shot(page, "plugins")

            await page.goto(f"{base}/ui/plugins/chatty")
            before = plugins.get("chatty").plugin_pid
            restarts = plugins.get("chatty").restarts
            await page.click("#restart")
            await page.wait_for_function(
                "document.getElementById('restart-result').textContent.startsWith('restarted')",
                timeout=30_000,
            )
            after = plugins.get("chatty").plugin_pid
            assert after is not None
            assert after != before
            assert plugins.get("chatty").restarts == restarts + 1
            assert await page.inner_text("#pid") == str(after)
            assert "_parse_phone" in await page.inner_text("pre.traceback")  # last errors
            assert "chatty.delivery: delivering node n0" in await page.inner_text("#logs")
            await _shot(page, "plugin")

            await page.goto(f"{base}/ui/runs")
            await page.click(f"a[href='/ui/runs/{run_id}']")
            traceback = await page.inner_text("pre.traceback")
            assert "in _parse_phone" in traceback
            assert "ValueError: invalid literal for int()" in traceback
            assert "failed" in await page.inner_text("#nodes")
            await _shot(page, "run")

            await page.goto(f"{base}/ui/node-types")
            await page.click("summary")
            assert '"name": "chatty"' in await page.inner_text("details pre")
            await _shot(page, "node-types")

            await page.goto(f"{base}/ui/calls")
            assert "chatty" in await page.inner_text("#calls")
            await _shot(page, "calls")
        finally:
            await browser.close()


async def _shot(page: Any, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)
