"""A small stdio MCP server (Python SDK) whose process can be made to exit on demand.

Used to check what the gateway does when its upstream dies mid-call: the test asks for
`exit_after` while a `sleep` call is in flight, and the process exits with a chosen status.
"""

import os
import sys
import threading

import anyio
from mcp.server.mcpserver import MCPServer

app = MCPServer("toolgate-e2e-exit-server")


@app.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then say so."""
    await anyio.sleep(seconds)
    return f"slept {seconds}s"


@app.tool()
def exit_after(code: int, delay: float) -> str:
    """Exit the whole server process with status `code` after `delay` seconds."""

    def die() -> None:
        sys.stderr.flush()
        os._exit(code)

    threading.Timer(delay, die).start()
    return f"exiting with {code} in {delay}s"


if __name__ == "__main__":
    app.run("stdio")
