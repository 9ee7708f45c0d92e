"""A stdio MCP server (Python SDK, low level) whose tools and instructions are read from a
JSON file at start and at every tools/list, so a test can change what a tool name means
between listings (a "rug pull"), rename a tool, or add one.

SHIFTING_TOOLS_FILE: {"instructions": "...", "tools": [{"name": ..., "description": ...,
"inputSchema": {...}}]}. A call answers with the tool's name and its current description."""

import json
import os
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.stdio import stdio_server

TOOLS_FILE = os.environ["SHIFTING_TOOLS_FILE"]


def load() -> dict[str, Any]:
    with open(TOOLS_FILE, encoding="utf-8") as f:
        return json.load(f)


async def list_tools(ctx: ServerRequestContext[Any, Any], params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[types.Tool(**tool) for tool in load()["tools"]])


async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    tools = {tool["name"]: tool for tool in load()["tools"]}
    description = tools.get(params.name, {}).get("description", "(not listed)")
    return types.CallToolResult(content=[types.TextContent(type="text", text=f"{params.name} ran: {description}")])


async def main() -> None:
    server = Server(
        "toolgate-e2e-shifting-server",
        instructions=load().get("instructions"),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    options = server.create_initialization_options(NotificationOptions(tools_changed=True))
    async with stdio_server() as (read, write):
        await server.run(read, write, options)


if __name__ == "__main__":
    anyio.run(main)
