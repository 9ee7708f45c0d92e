"""A Streamable HTTP MCP server (JSON answers, no session) that writes down the
Authorization header of every request it gets: for showing what credentials a proxy in
front of it sends upstream.

Listens on 127.0.0.1 (RECORDER_PORT, default any) and prints `recorder on <url>`; appends
a line to RECORDER_LOG for each request: the Unix time it arrived and its Authorization
header (`-` without one). One tool, `whoami`, answers `ok`."""

import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = os.environ["RECORDER_LOG"]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (the handler's name)
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(f"{time.time():.3f} {self.headers.get('Authorization', '-')}\n")
        message = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        method = message.get("method")
        if "id" not in message or method is None:
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if method == "initialize":
            result = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "header-recorder", "version": "1"},
            }
        elif method == "tools/list":
            result = {"tools": [{"name": "whoami", "inputSchema": {"type": "object"}}]}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": "ok"}]}
        else:
            result = {}
        body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_DELETE(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("RECORDER_PORT", "0"))), Handler)
    print(f"recorder on http://127.0.0.1:{server.server_address[1]}/mcp", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
