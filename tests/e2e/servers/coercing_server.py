"""A stdio MCP server (Python SDK) whose tools take typed arguments, as most do.

The SDK validates arguments with pydantic in lax mode, which coerces: `"5000"` runs as the
integer 5000 and `"true"` as True. Every call a tool runs is appended to the file named by
COERCING_CALL_LOG (as the values the tool received), so a test can see what ran.
"""

import json
import os

from mcp.server.mcpserver import MCPServer

app = MCPServer("toolgate-e2e-coercing-server")


def record(tool: str, **arguments: object) -> None:
    path = os.environ.get("COERCING_CALL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"tool": tool, **arguments}) + "\n")


@app.tool()
def refund(amount: int, currency: str = "usd") -> str:
    """Refund an amount to the customer."""
    record("refund", amount=amount, currency=currency)
    return f"refunded {amount} {currency}"


@app.tool()
def delete_customer(customer: str, livemode: bool = False) -> str:
    """Delete a customer record."""
    record("delete_customer", customer=customer, livemode=livemode)
    return f"deleted {customer} (livemode={livemode})"


if __name__ == "__main__":
    app.run("stdio")
