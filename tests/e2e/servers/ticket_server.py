"""A stdio MCP server (Python SDK) whose one tool has a side effect a test can count: each
call opens a new ticket with the next number, after an optional delay, so two calls in
flight at once can be made to overlap."""

import anyio

from mcp.server.mcpserver import MCPServer

app = MCPServer("toolgate-e2e-ticket-server")
opened = 0


@app.tool()
async def open_ticket(title: str, delay_ms: int = 0) -> str:
    """Open a ticket."""
    global opened
    await anyio.sleep(delay_ms / 1000)
    opened += 1
    return f"ticket {opened}: {title}"


if __name__ == "__main__":
    app.run("stdio")
