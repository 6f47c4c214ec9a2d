"""Child process of bench/peer_mcp.py: the MCP Python SDK's stdio server with one `echo` tool."""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script: never import from this folder (bench/http.py would shadow the stdlib's http).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from mcp.server.mcpserver import MCPServer

server = MCPServer("echo")


@server.tool()
async def echo(text: str) -> str:
    return text


if __name__ == "__main__":
    server.run("stdio")
