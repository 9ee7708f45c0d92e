"""Test harness: start real MCP servers, directly or behind toolgate, and talk to them.

Two ways in:

* `mcp_session(argv, ...)` runs any stdio command under the Python `mcp` SDK's
  `stdio_client` + `ClientSession`, with the client callbacks (sampling, elicitation,
  roots) and a recorder for every server notification.
* `RawSession` spawns a command with plain pipes and speaks newline-delimited JSON-RPC
  itself, for what an SDK will not send (malformed lines, batches, duplicate keys) and for
  watching the process itself (exit status, shutdown).

`Gateway` (the `gateway` fixture) ties both to one test's temporary directory: it writes
the policy file, builds toolgate's command line and keeps every stderr log so a failing
test can show them.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parent.parent
NODE_MODULES = E2E_DIR / "node_modules"
MCP_PACKAGES = NODE_MODULES / "@modelcontextprotocol"
EVERYTHING_JS = MCP_PACKAGES / "server-everything" / "dist" / "index.js"
FILESYSTEM_JS = MCP_PACKAGES / "server-filesystem" / "dist" / "index.js"
EXIT_SERVER_PY = E2E_DIR / "servers" / "exit_server.py"

# How long one request may take before the SDK gives up on it. Generous: CI has 2 cores.
REQUEST_TIMEOUT_S = 20.0
# How long a process may take to go away once it should.
EXIT_TIMEOUT_S = 8.0

DENY_PREFIX = "[POLICY DENIED]"
DECISION_META_KEY = "dev.toolgate/decision"


# --------------------------------------------------------------------------------------
# Where things are
# --------------------------------------------------------------------------------------


def toolgate_bin() -> Path:
    """The toolgate binary under test; fails (never skips) the calling test when absent."""
    configured = os.environ.get("TOOLGATE_BIN")
    # Absolute, so it still names the binary for a process started in another directory.
    path = Path(configured).resolve() if configured else REPO_ROOT / "target" / "debug" / "toolgate"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"toolgate binary not found at {path} "
            "(build it with `cargo build -p toolgate` or set TOOLGATE_BIN); "
            "tests that need the gateway fail rather than skip, so CI cannot pass without it",
            pytrace=False,
        )
    return path


def node_bin() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` is not on PATH; the MCP test servers need Node.js", pytrace=False)
    return node


def require_node_modules() -> None:
    if not EVERYTHING_JS.is_file():
        pytest.fail(
            f"{EVERYTHING_JS.relative_to(REPO_ROOT)} is missing: run `npm ci` in tests/e2e "
            "(scripts/test.sh does this)",
            pytrace=False,
        )


def everything_command() -> list[str]:
    """server-everything in stdio mode (its launcher takes the transport as first argument)."""
    require_node_modules()
    return [node_bin(), str(EVERYTHING_JS), "stdio"]


def filesystem_command(*roots: Path) -> list[str]:
    """server-filesystem allowed to touch `roots` (more can come from the client's roots)."""
    require_node_modules()
    return [node_bin(), str(FILESYSTEM_JS), *(str(r) for r in roots)]


def exit_server_command() -> list[str]:
    """A Python SDK server whose process exits with a chosen status on request."""
    return [sys.executable, str(EXIT_SERVER_PY)]


def with_pidfile(command: Sequence[str], pidfile: Path) -> list[str]:
    """Wraps a server command so its pid lands in `pidfile` (`exec` keeps pid and stdio)."""
    return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(pidfile), *command]


def read_pid(pidfile: Path, timeout: float = EXIT_TIMEOUT_S) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = pidfile.read_text().strip()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server never wrote its pid to {pidfile}")


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def wait_until_dead(pid: int, timeout: float = EXIT_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


# --------------------------------------------------------------------------------------
# Time windows: rate limits use UTC-aligned windows, so a test must not straddle an edge
# --------------------------------------------------------------------------------------


def seconds_to_window_edge(period_s: int) -> float:
    return period_s - (time.time() % period_s)


async def avoid_window_edge(period_s: int, margin_s: float) -> None:
    """Sleeps past the next aligned window edge if fewer than `margin_s` seconds remain."""
    remaining = seconds_to_window_edge(period_s)
    if remaining < margin_s:
        await anyio.sleep(remaining + 0.25)


# --------------------------------------------------------------------------------------
# SDK sessions
# --------------------------------------------------------------------------------------


@dataclass
class Recorder:
    """Keeps every notification a session receives, and lets a test wait for one."""

    notifications: list[Any] = field(default_factory=list)
    _changed: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, message: Any) -> None:
        self.notifications.append(message)
        self._changed.set()
        self._changed = anyio.Event()

    def count(self, kind: type) -> int:
        return sum(1 for n in self.notifications if isinstance(n, kind))

    async def wait_for(self, kind: type, *, more_than: int = 0, timeout: float = 10.0) -> bool:
        """Waits until more than `more_than` notifications of `kind` have arrived."""
        with anyio.move_on_after(timeout):
            while self.count(kind) <= more_than:
                await self._changed.wait()
            return True
        return False

    async def settle(self, quiet_s: float = 0.75, limit_s: float = 5.0) -> None:
        """Waits until no notification has arrived for `quiet_s` (startup chatter is over)."""
        deadline = anyio.current_time() + limit_s
        while anyio.current_time() < deadline:
            before = len(self.notifications)
            await anyio.sleep(quiet_s)
            if len(self.notifications) == before:
                return


@dataclass
class Connected:
    session: ClientSession
    recorder: Recorder
    init: types.InitializeResult


SamplingFn = Callable[[Any, types.CreateMessageRequestParams], Awaitable[Any]]
ElicitationFn = Callable[[Any, types.ElicitRequestParams], Awaitable[Any]]
RootsFn = Callable[[Any], Awaitable[Any]]


@asynccontextmanager
async def mcp_session(
    argv: Sequence[str],
    *,
    stderr_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    sampling: SamplingFn | None = None,
    elicitation: ElicitationFn | None = None,
    roots: RootsFn | None = None,
    request_timeout: float = REQUEST_TIMEOUT_S,
) -> AsyncIterator[Connected]:
    """Starts `argv` as a stdio MCP server and yields an initialized SDK session."""
    params = StdioServerParameters(command=argv[0], args=list(argv[1:]), env=env, cwd=cwd)
    recorder = Recorder()
    with open(stderr_path, "a", encoding="utf-8") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(
                read,
                write,
                read_timeout_seconds=request_timeout,
                sampling_callback=sampling,
                elicitation_callback=elicitation,
                list_roots_callback=roots,
                message_handler=recorder.handle,
            ) as session:
                with anyio.fail_after(request_timeout):
                    init = await session.initialize()
                yield Connected(session=session, recorder=recorder, init=init)


def dump(model: Any) -> dict[str, Any]:
    """A result as it was on the wire (aliases, no unset fields)."""
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def first_text(result: types.CallToolResult) -> str:
    assert result.content, f"result has no content: {dump(result)}"
    block = result.content[0]
    assert isinstance(block, types.TextContent), f"first block is not text: {dump(result)}"
    return block.text


def is_denial(result: types.CallToolResult) -> bool:
    return bool(result.is_error) and first_text(result).startswith(DENY_PREFIX)


def decision_meta(result: types.CallToolResult) -> dict[str, Any]:
    meta = dump(result).get("_meta") or {}
    decision = meta.get(DECISION_META_KEY)
    assert isinstance(decision, dict), f"no {DECISION_META_KEY} in _meta: {dump(result)}"
    return decision


# --------------------------------------------------------------------------------------
# Raw newline-delimited JSON-RPC
# --------------------------------------------------------------------------------------


class RawSession:
    """A process on plain pipes, spoken to one JSON-RPC line at a time."""

    def __init__(self, argv: Sequence[str], *, stderr_path: Path, env: dict[str, str] | None = None):
        self.argv = list(argv)
        self._stderr = open(stderr_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.notifications: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []
        self.unclaimed_responses: list[dict[str, Any]] = []
        self._next_id = 1000

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    # -- sending --------------------------------------------------------------------

    def send_line(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        assert self.proc.stdin is not None
        self.proc.stdin.write(data.rstrip(b"\n") + b"\n")
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_line(json.dumps(message, separators=(",", ":")))

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def send_request(self, method: str, params: dict[str, Any] | None = None) -> int:
        request_id = self.new_id()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return request_id

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    # -- receiving ------------------------------------------------------------------

    def next_message(self, timeout: float = REQUEST_TIMEOUT_S) -> Any:
        """The next line from stdout, parsed; raises on EOF or timeout."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout}s") from None
        if line is None:
            self._lines.put(None)  # keep reporting EOF
            raise EOFError("stdout closed")
        try:
            return json.loads(line)
        except json.JSONDecodeError as e:
            raise AssertionError(f"not one JSON value per line: {line!r}") from e

    def next_response(self, timeout: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
        """The next response (result or error), setting notifications and requests aside."""
        if self.unclaimed_responses:
            return self.unclaimed_responses.pop(0)
        return self._read_response(timeout)

    def _read_response(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no response within {timeout}s")
            message = self.next_message(remaining)
            assert isinstance(message, dict), f"expected one JSON object, got {message!r}"
            if "method" in message:
                (self.server_requests if "id" in message else self.notifications).append(message)
                continue
            return message

    def response_to(self, request_id: Any, timeout: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
        """The response for `request_id`; other responses read meanwhile are kept in order."""
        for i, message in enumerate(self.unclaimed_responses):
            if message.get("id") == request_id:
                return self.unclaimed_responses.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_response(max(0.0, deadline - time.monotonic()))
            if message.get("id") == request_id:
                return message
            self.unclaimed_responses.append(message)

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.response_to(self.send_request(method, params))

    def initialize(self, protocol_version: str = "2025-06-18") -> dict[str, Any]:
        response = self.request(
            "initialize",
            {
                "protocolVersion": protocol_version,
                "capabilities": {},
                "clientInfo": {"name": "toolgate-e2e-raw", "version": "0"},
            },
        )
        assert "result" in response, f"initialize failed: {response}"
        self.notify("notifications/initialized")
        return response["result"]

    # -- the process ----------------------------------------------------------------

    def wait(self, timeout: float = EXIT_TIMEOUT_S) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Closes stdin, then ends the process (by its own pid) if it does not go by itself."""
        self.close_stdin()
        if self.wait(3.0) is None:
            self.proc.terminate()
            if self.wait(3.0) is None:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


# --------------------------------------------------------------------------------------
# One test's gateway setup
# --------------------------------------------------------------------------------------


class Gateway:
    """A test's policy file, state and logs, and the command lines to run toolgate with."""

    def __init__(self, tmp_path: Path):
        self.dir = tmp_path
        self.policy_path = tmp_path / "policy.yaml"
        self.state_dir = tmp_path / "state"
        self.audit_dir = tmp_path / "audit"
        self.home = tmp_path / "home"
        for d in (self.state_dir, self.audit_dir, self.home):
            d.mkdir(exist_ok=True)
        self.logs: list[Path] = []

    # -- files ----------------------------------------------------------------------

    def write_policy(self, text: str, path: Path | None = None) -> Path:
        """Writes a policy in place (the way an editor saving the file does)."""
        target = path or self.policy_path
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        return target

    def audit_events(self) -> list[dict[str, Any]]:
        """Every line of the audit log, across files. The gateway may be writing as this
        reads, so a last line without its newline (half written) is left for the next read."""
        events = []
        for path in self.audit_dir.glob("*.jsonl"):
            whole = path.read_text().split("\n")[:-1]
            events += [json.loads(line) for line in whole if line.strip()]
        return events

    def wait_for_audit(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> list[dict[str, Any]]:
        """The audit log once a line matches `predicate` (the writer is a thread of its own),
        or as it is after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.audit_events()
            if any(predicate(e) for e in events) or time.monotonic() > deadline:
                return events
            time.sleep(0.05)

    def new_log(self, name: str) -> Path:
        path = self.dir / f"{len(self.logs):02d}-{name}.stderr.log"
        path.touch()
        self.logs.append(path)
        return path

    def env(self) -> dict[str, str]:
        """toolgate's environment: HOME points into the test dir so nothing leaks into ~."""
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        env["HOME"] = str(self.home)
        env.setdefault("RUST_BACKTRACE", "1")
        return env

    # -- command lines --------------------------------------------------------------

    def argv(
        self,
        server: Sequence[str],
        *,
        policy: Path | None = None,
        state_dsn: str | None = "memory:",
        extra: Sequence[str] = (),
    ) -> list[str]:
        argv = [str(toolgate_bin()), "-c", str(policy or self.policy_path)]
        if state_dsn is not None:
            argv += ["--state-dsn", state_dsn]
        argv += ["--state-dir", str(self.state_dir), "--audit-dir", str(self.audit_dir)]
        argv += ["--log-level", "debug", *extra, "--", *server]
        return argv

    # -- sessions -------------------------------------------------------------------

    def session(
        self,
        server: Sequence[str] | None = None,
        *,
        state_dsn: str | None = "memory:",
        extra: Sequence[str] = (),
        policy: Path | None = None,
        env: dict[str, str] | None = None,
        **callbacks: Any,
    ):
        """An SDK session through toolgate (server-everything unless told otherwise)."""
        argv = self.argv(server or everything_command(), policy=policy, state_dsn=state_dsn, extra=extra)
        return mcp_session(argv, stderr_path=self.new_log("toolgate"), env=env or self.env(), **callbacks)

    def direct(self, server: Sequence[str] | None = None, **callbacks: Any):
        """An SDK session straight to the server, no toolgate: the reference behaviour."""
        argv = list(server or everything_command())
        return mcp_session(argv, stderr_path=self.new_log("direct"), **callbacks)

    def raw(self, server: Sequence[str] | None = None, *, state_dsn: str | None = "memory:") -> RawSession:
        argv = self.argv(server or everything_command(), state_dsn=state_dsn)
        return RawSession(argv, stderr_path=self.new_log("toolgate-raw"), env=self.env())

    def run_cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Runs a toolgate subcommand (validate, explain) to completion."""
        return subprocess.run(
            [str(toolgate_bin()), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=self.dir,
        )

    def stderr_report(self, limit: int = 20_000) -> str:
        parts = []
        for log in self.logs:
            try:
                text = log.read_text(errors="replace")
            except FileNotFoundError:
                continue
            if text.strip():
                parts.append(f"--- {log.name} ---\n{text[-limit:]}")
        return "\n".join(parts)
