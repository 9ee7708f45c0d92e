"""A stdio MCP server (Python SDK, low level) that lists its tools a few per page, with
cursors, and can be made to exit: for merged pagination and failure isolation behind a
gateway config.

PAGING_NAME: the tools' name stem (tools are `<stem>_0` … `<stem>_<N-1>`, plus `crash`);
PAGING_TOOLS: N (default 9); PAGING_PAGE: tools per page (default 3); PAGING_LIST_DELAY:
seconds each tools/list takes (default 0); PAGING_ECHO_TRACEPARENT=1: a call's answer ends
with ` traceparent=<its _meta.traceparent>` when it has one. A call answers
`<stem>: <tool>`; `crash` exits the process with status 3 right after answering."""

import os
import threading
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.stdio import stdio_server

STEM = os.environ.get("PAGING_NAME", "tool")
COUNT = int(os.environ.get("PAGING_TOOLS", "9"))
PAGE = int(os.environ.get("PAGING_PAGE", "3"))
LIST_DELAY = float(os.environ.get("PAGING_LIST_DELAY", "0"))
ECHO_TRACEPARENT = os.environ.get("PAGING_ECHO_TRACEPARENT") == "1"

TOOLS = [
    types.Tool(name=f"{STEM}_{i}", description=f"Tool {i} of {STEM}.", input_schema={"type": "object"})
    for i in range(COUNT)
] + [types.Tool(name="crash", description="Exit the server process.", input_schema={"type": "object"})]


async def list_tools(ctx: ServerRequestContext[Any, Any], params: Any) -> types.ListToolsResult:
    await anyio.sleep(LIST_DELAY)
    start = int(params.cursor) if params is not None and params.cursor else 0
    end = start + PAGE
    next_cursor = str(end) if end < len(TOOLS) else None
    return types.ListToolsResult(tools=TOOLS[start:end], next_cursor=next_cursor)


async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    if params.name == "crash":
        threading.Timer(0.2, lambda: os._exit(3)).start()
    text = f"{STEM}: {params.name}"
    traceparent = (params.meta or {}).get("traceparent") if ECHO_TRACEPARENT else None
    if traceparent:
        text += f" traceparent={traceparent}"
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


async def main() -> None:
    server = Server("toolgate-e2e-paging-server", on_list_tools=list_tools, on_call_tool=call_tool)
    options = server.create_initialization_options(NotificationOptions(tools_changed=True))
    async with stdio_server() as (read, write):
        await server.run(read, write, options)


if __name__ == "__main__":
    anyio.run(main)
