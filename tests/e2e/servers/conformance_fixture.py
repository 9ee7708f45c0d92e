"""The MCP server that the conformance suite's server scenarios talk to (Python `mcp` SDK).

`@modelcontextprotocol/conformance` tests a server by calling tools, prompts and
resources with fixed names (`test_simple_text`, `test://static-text`,
`test_prompt_with_arguments`, ...) and checking what comes back. This server implements
them on the SDK's low-level `Server`, so every result is exactly what the scenario's
text asks for (no schema generated from Python signatures).

    python conformance_fixture.py stdio              # for toolgate to front
    python conformance_fixture.py http --port N      # Streamable HTTP on 127.0.0.1:N/mcp

Both modes serve the handshake era (`initialize`; 2025-11-25 and before) and the
per-request era (2026-07-28) from the same handlers. The process keeps no state a
2026-07-28 exchange depends on: toolgate runs such a request in a child of its own, so
multi-round state travels in the signed `requestState`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import itertools
import json
import sys
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import mcp_types as types
from mcp.server.caching import CacheHint
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

# The suite still tests logging, sampling and elicitation on the handshake era, which
# the SDK marks deprecated as of 2026-07-28; the warnings would only clutter stderr.
warnings.simplefilter("ignore")

SERVER_NAME = "toolgate-conformance-fixture"

# A 1x1 red PNG and a minimal (empty) 8 kHz mono WAV, base64.
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_EMPTY = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="

# Signs `requestState`. A fixed key, not a per-process one: behind toolgate every
# 2026-07-28 round runs in a fresh process, and a fixture guards nothing of value.
STATE_KEY = b"toolgate-conformance-fixture-request-state"

Ctx = ServerRequestContext[Any, Any]
Result = dict[str, Any]
ToolFn = Callable[[Ctx, dict[str, Any]], Awaitable[Result]]


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def no_args() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


def is_modern(ctx: Ctx) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


# --------------------------------------------------------------------------------------
# 2026-07-28 input requests (SEP-2322): ask by returning an InputRequiredResult, get the
# answers on the retry, carry progress in a signed requestState
# --------------------------------------------------------------------------------------


def sign_state(payload: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode()
    mac = hmac.new(STATE_KEY, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def verify_state(state: Any) -> dict[str, Any]:
    """The payload of a state this server signed; -32602 for anything else."""
    try:
        body, mac = str(state).rsplit(".", 1)
        expected = hmac.new(STATE_KEY, body.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(mac, expected):
            payload = json.loads(base64.urlsafe_b64decode(body.encode()))
            if isinstance(payload, dict):
                return payload
    except (ValueError, TypeError):
        pass
    raise MCPError(code=types.INVALID_PARAMS, message="requestState failed its integrity check")


def input_responses(ctx: Ctx) -> dict[str, Any]:
    raw = (ctx.params or {}).get("inputResponses")
    return dict(raw) if isinstance(raw, Mapping) else {}


def request_state(ctx: Ctx) -> Any:
    return (ctx.params or {}).get("requestState")


def input_required(requests: dict[str, Any], state: dict[str, Any] | None = None) -> Result:
    result: Result = {"resultType": "input_required", "inputRequests": requests}
    if state is not None:
        result["requestState"] = sign_state(state)
    return result


def elicit_request(message: str, field: str, kind: str = "string") -> dict[str, Any]:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}


def sampling_request(prompt: str, max_tokens: int) -> dict[str, Any]:
    message = {"role": "user", "content": text(prompt)}
    return {"method": "sampling/createMessage", "params": {"messages": [message], "maxTokens": max_tokens}}


ROOTS_REQUEST: dict[str, Any] = {"method": "roots/list", "params": {}}


def answered(response: Any, field: str) -> str:
    """A field of an accepted elicitation, or of a sampling answer's text."""
    if not isinstance(response, Mapping):
        return "unknown"
    content = response.get("content")
    if isinstance(content, Mapping):
        value = content.get(field, content.get("text"))
        return value if isinstance(value, str) else json.dumps(value)
    return "unknown"


def client_has(ctx: Ctx, capability: str) -> bool:
    caps = ctx.session.client_capabilities
    return caps is not None and getattr(caps, capability, None) is not None


def needs_modern(ctx: Ctx) -> Result | None:
    """Input-request tools only exist on 2026-07-28; an error result elsewhere."""
    if is_modern(ctx):
        return None
    return {"content": [text("This tool needs protocol 2026-07-28 (input requests)")], "isError": True}


# --------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------

TOOLS: dict[str, tuple[dict[str, Any], ToolFn]] = {}


def tool(name: str, description: str, input_schema: dict[str, Any] | None = None):
    def register(fn: ToolFn) -> ToolFn:
        TOOLS[name] = ({"name": name, "description": description, "inputSchema": input_schema or no_args()}, fn)
        return fn

    return register


@tool("test_simple_text", "Returns one text block")
async def simple_text(ctx: Ctx, args: dict[str, Any]) -> Result:
    return {"content": [text("This is a simple text response for testing.")]}


@tool("test_image_content", "Returns one image block (a 1x1 PNG)")
async def image_content(ctx: Ctx, args: dict[str, Any]) -> Result:
    return {"content": [{"type": "image", "data": PNG_1X1, "mimeType": "image/png"}]}


@tool("test_audio_content", "Returns one audio block (a WAV)")
async def audio_content(ctx: Ctx, args: dict[str, Any]) -> Result:
    return {"content": [{"type": "audio", "data": WAV_EMPTY, "mimeType": "audio/wav"}]}


@tool("test_embedded_resource", "Returns one embedded text resource")
async def embedded_resource(ctx: Ctx, args: dict[str, Any]) -> Result:
    resource = {
        "uri": "test://embedded-resource",
        "mimeType": "text/plain",
        "text": "This is an embedded resource content.",
    }
    return {"content": [{"type": "resource", "resource": resource}]}


@tool("test_multiple_content_types", "Returns text, image and resource blocks")
async def multiple_content_types(ctx: Ctx, args: dict[str, Any]) -> Result:
    resource = {
        "uri": "test://mixed-content-resource",
        "mimeType": "application/json",
        "text": json.dumps({"test": "data", "value": 123}, separators=(",", ":")),
    }
    return {
        "content": [
            text("Multiple content types test:"),
            {"type": "image", "data": PNG_1X1, "mimeType": "image/png"},
            {"type": "resource", "resource": resource},
        ]
    }


async def three_logs(ctx: Ctx) -> None:
    for i, message in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
        if i:
            await anyio.sleep(0.05)
        # On 2026-07-28 the SDK sends these only if the request's _meta asked for a log level.
        await ctx.session.send_log_message(
            level="info", data=message, logger="conformance-fixture", related_request_id=ctx.request_id
        )


@tool("test_tool_with_logging", "Sends three log messages while it runs")
async def tool_with_logging(ctx: Ctx, args: dict[str, Any]) -> Result:
    await three_logs(ctx)
    return {"content": [text("Tool with logging executed successfully")]}


@tool("test_logging_tool", "Logs three messages, only when the request asked for logs")
async def logging_tool(ctx: Ctx, args: dict[str, Any]) -> Result:
    await three_logs(ctx)
    return {"content": [text("Logging tool executed")]}


@tool("test_tool_with_progress", "Reports progress 0, 50, 100 of 100")
async def tool_with_progress(ctx: Ctx, args: dict[str, Any]) -> Result:
    for i, progress in enumerate((0, 50, 100)):
        if i:
            await anyio.sleep(0.05)
        await ctx.session.report_progress(progress, 100, f"Completed step {i + 1} of 3")
    return {"content": [text("Tool with progress executed successfully")]}


@tool("test_error_handling", "Always fails")
async def error_handling(ctx: Ctx, args: dict[str, Any]) -> Result:
    return {"content": [text("This tool intentionally returns an error for testing")], "isError": True}


@tool("test_reconnection", "Closes its SSE stream mid-call; the answer arrives after the client reconnects")
async def reconnection(ctx: Ctx, args: dict[str, Any]) -> Result:
    if ctx.close_sse_stream is not None:
        await ctx.close_sse_stream()
    await anyio.sleep(0.1)
    return {"content": [text("Reconnection test completed successfully.")]}


@tool(
    "test_sampling",
    "Asks the client's LLM to answer a prompt",
    {"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]},
)
async def sampling(ctx: Ctx, args: dict[str, Any]) -> Result:
    result = await ctx.session.create_message(
        messages=[types.SamplingMessage(role="user", content=types.TextContent(text=str(args.get("prompt", ""))))],
        max_tokens=100,
        related_request_id=ctx.request_id,
    )
    content = result.content
    answer = content.text if isinstance(content, types.TextContent) else str(content)
    return {"content": [text(f"LLM response: {answer}")]}


@tool(
    "test_elicitation",
    "Asks the user for a username and an email address",
    {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
)
async def elicitation(ctx: Ctx, args: dict[str, Any]) -> Result:
    schema = {
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        },
        "required": ["username", "email"],
    }
    result = await ctx.session.elicit_form(str(args.get("message", "")), schema, related_request_id=ctx.request_id)
    return {"content": [text(f"User response: action={result.action}, content={json.dumps(result.content)}")]}


@tool("test_elicitation_sep1034_defaults", "Elicits every primitive type, each with a default")
async def elicitation_defaults(ctx: Ctx, args: dict[str, Any]) -> Result:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": {"type": "boolean", "description": "Verification status", "default": True},
        },
    }
    result = await ctx.session.elicit_form("Please review the fields and their defaults", schema, ctx.request_id)
    return {"content": [text(f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}")]}


def titled(prefix: str) -> list[dict[str, str]]:
    words = ((1, "First"), (2, "Second"), (3, "Third"))
    return [{"const": f"value{i}", "title": f"{word} {prefix}"} for i, word in words]


@tool("test_elicitation_sep1330_enums", "Elicits all five enum schema variants")
async def elicitation_enums(ctx: Ctx, args: dict[str, Any]) -> Result:
    options = ["option1", "option2", "option3"]
    schema = {
        "type": "object",
        "properties": {
            "untitledSingle": {"type": "string", "description": "Untitled single-select", "enum": options},
            "titledSingle": {"type": "string", "description": "Titled single-select", "oneOf": titled("Option")},
            "legacyEnum": {
                "type": "string",
                "description": "Legacy titled enum",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "description": "Untitled multi-select",
                "items": {"type": "string", "enum": options},
            },
            "titledMulti": {
                "type": "array",
                "description": "Titled multi-select",
                "items": {"anyOf": titled("Choice")},
            },
        },
    }
    result = await ctx.session.elicit_form("Please pick from the enum fields", schema, ctx.request_id)
    return {"content": [text(f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}")]}


JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


@tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", JSON_SCHEMA_2020_12)
async def json_schema_2020_12(ctx: Ctx, args: dict[str, Any]) -> Result:
    return {"content": [text(f"received {json.dumps(args, sort_keys=True)}")]}


@tool(
    "test_header_param",
    "Echoes a region that clients also send as the Mcp-Param-Region header (SEP-2243)",
    {
        "type": "object",
        "properties": {"region": {"type": "string", "description": "A region name", "x-mcp-header": "Region"}},
        "required": ["region"],
    },
)
async def header_param(ctx: Ctx, args: dict[str, Any]) -> Result:
    return {"content": [text(f"region={args.get('region')}")]}


@tool("test_missing_capability", "Needs the client's sampling capability (SEP-2575)")
async def missing_capability(ctx: Ctx, args: dict[str, Any]) -> Result:
    if not client_has(ctx, "sampling"):
        raise MCPError(
            code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            message="This tool needs the sampling capability",
            data={"requiredCapabilities": {"sampling": {}}},
        )
    return {"content": [text("The client declared sampling")]}


@tool("test_streaming_elicitation", "Asks for a name (an input request on 2026-07-28)")
async def streaming_elicitation(ctx: Ctx, args: dict[str, Any]) -> Result:
    if not is_modern(ctx):
        result = await ctx.session.elicit_form(
            "What is your name?",
            {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
            ctx.request_id,
        )
        return {"content": [text(f"Hello, {json.dumps(result.content)}")]}
    responses = input_responses(ctx)
    if "name" in responses:
        return {"content": [text(f"Hello, {answered(responses['name'], 'name')}!")]}
    return input_required({"name": elicit_request("What is your name?", "name")})


@tool("test_input_required_result_elicitation", "Asks the user's name with an input request")
async def irr_elicitation(ctx: Ctx, args: dict[str, Any]) -> Result:
    if (legacy := needs_modern(ctx)) is not None:
        return legacy
    responses = input_responses(ctx)
    if "user_name" not in responses:
        return input_required({"user_name": elicit_request("What is your name?", "name")})
    return {"content": [text(f"Hello, {answered(responses['user_name'], 'name')}!")]}


@tool("test_input_required_result_sampling", "Asks the client's LLM with an input request")
async def irr_sampling(ctx: Ctx, args: dict[str, Any]) -> Result:
    if (legacy := needs_modern(ctx)) is not None:
        return legacy
    responses = input_responses(ctx)
    if "capital_question" not in responses:
        return input_required({"capital_question": sampling_request("What is the capital of France?", 100)})
    return {"content": [text(f"LLM response: {answered(responses['capital_question'], 'text')}")]}


@tool("test_input_required_result_list_roots", "Asks for the client's roots with an input request")
async def irr_list_roots(ctx: Ctx, args: dict[str, Any]) -> Result:
    if (legacy := needs_modern(ctx)) is not None:
        return legacy
    responses = input_responses(ctx)
    roots = responses.get("client_roots")
    if not isinstance(roots, Mapping):
        return input_required({"client_roots": ROOTS_REQUEST})
    uris = [str(r.get("uri")) for r in roots.get("roots") or [] if isinstance(r, Mapping)]
    return {"content": [text(f"Client roots: {', '.join(uris) or '(none)'}")]}


@tool("test_input_required_result_request_state", "Round-trips a signed requestState")
async def irr_request_state(ctx: Ctx, args: dict[str, Any]) -> Result:
    if (legacy := needs_modern(ctx)) is not None:
        return legacy
    tool_name = "test_input_required_result_request_state"
    responses = input_responses(ctx)
    if "confirm" not in responses or request_state(ctx) is None:
        return input_required({"confirm": elicit_request("Please confirm", "ok", "boolean")}, {"tool": tool_name})
    if verify_state(request_state(ctx)).get("tool") != tool_name:
        raise MCPError(code=types.INVALID_PARAMS, message="requestState belongs to another request")
    return {"content": [text("state-ok: confirmation received")]}


@tool("test_input_required_result_multiple_inputs", "Asks three things at once")
async def irr_multiple_inputs(ctx: Ctx, args: dict[str, Any]) -> Result:
    if (legacy := needs_modern(ctx)) is not None:
        return legacy
    requests = {
        "user_name": elicit_request("What is your name?", "name"),
        "greeting": sampling_request("Generate a greeting", 50),
        "client_roots": ROOTS_REQUEST,
    }
    responses = input_responses(ctx)
    if request_state(ctx) is None or any(key not in responses for key in requests):
        return input_required(requests, {"tool": "test_input_required_result_multiple_inputs"})
    verify_state(request_state(ctx))
    name, greeting = answered(responses["user_name"], "name"), answered(responses["greeting"], "text")
    return {"content": [text(f"All inputs received: name={name}, greeting={greeting}")]}


@tool("test_input_required_result_multi_round", "Asks in two rounds, carrying state between them")
async def irr_multi_round(ctx: Ctx, args: dict[str, Any]) -> Result:
    if (legacy := needs_modern(ctx)) is not None:
        return legacy
    responses = input_responses(ctx)
    state = request_state(ctx)
    round_ = verify_state(state).get("round") if state is not None else None
    if round_ == 1 and "step1" in responses:
        name = answered(responses["step1"], "name")
        return input_required(
            {"step2": elicit_request("Step 2: What is your favorite color?", "color")}, {"round": 2, "name": name}
        )
    if round_ == 2 and "step2" in responses:
        name = verify_state(state).get("name")
        return {"content": [text(f"Done: name={name}, color={answered(responses['step2'], 'color')}")]}
    return input_required({"step1": elicit_request("Step 1: What is your name?", "name")}, {"round": 1})


@tool("test_input_required_result_tampered_state", "Rejects a requestState it did not sign")
async def irr_tampered_state(ctx: Ctx, args: dict[str, Any]) -> Result:
    if (legacy := needs_modern(ctx)) is not None:
        return legacy
    state = request_state(ctx)
    if state is None:
        return input_required({"confirm": elicit_request("Please confirm", "ok", "boolean")}, {"tool": "tampered"})
    verify_state(state)
    return {"content": [text("state-ok")]}


@tool("test_input_required_result_capabilities", "Asks only for what the client declared it can answer")
async def irr_capabilities(ctx: Ctx, args: dict[str, Any]) -> Result:
    if (legacy := needs_modern(ctx)) is not None:
        return legacy
    responses = input_responses(ctx)
    requests: dict[str, Any] = {}
    if client_has(ctx, "elicitation") and "user_name" not in responses:
        requests["user_name"] = elicit_request("What is your name?", "name")
    if client_has(ctx, "sampling") and "greeting" not in responses:
        requests["greeting"] = sampling_request("Generate a greeting", 50)
    if client_has(ctx, "roots") and "client_roots" not in responses:
        requests["client_roots"] = ROOTS_REQUEST
    if requests:
        return input_required(requests)
    return {"content": [text(f"Received: {', '.join(sorted(responses)) or 'nothing (no capabilities declared)'}")]}


async def list_tools(ctx: Ctx, params: types.PaginatedRequestParams | None) -> Result:
    return {"tools": [definition for definition, _ in TOOLS.values()]}


def tool_input_schema(name: str) -> dict[str, Any] | None:
    entry = TOOLS.get(name)
    return entry[0]["inputSchema"] if entry else None


async def call_tool(ctx: Ctx, params: types.CallToolRequestParams) -> Result:
    entry = TOOLS.get(params.name)
    if entry is None:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
    return await entry[1](ctx, dict(params.arguments or {}))


# --------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------

RESOURCES: dict[str, dict[str, Any]] = {
    "test://static-text": {
        "meta": {"name": "static-text", "description": "A static text resource", "mimeType": "text/plain"},
        "contents": {"mimeType": "text/plain", "text": "This is the content of the static text resource."},
    },
    "test://static-binary": {
        "meta": {"name": "static-binary", "description": "A static binary resource (PNG)", "mimeType": "image/png"},
        "contents": {"mimeType": "image/png", "blob": PNG_1X1},
    },
    "test://watched-resource": {
        "meta": {
            "name": "watched-resource",
            "description": "A resource clients may subscribe to",
            "mimeType": "text/plain",
        },
        "contents": {"mimeType": "text/plain", "text": "Watched resource content"},
    },
}
TEMPLATE_PREFIX, TEMPLATE_SUFFIX = "test://template/", "/data"

# What clients subscribed to (handshake era only). No resource ever changes, so nothing is sent.
SUBSCRIPTIONS: set[str] = set()


async def list_resources(ctx: Ctx, params: types.PaginatedRequestParams | None) -> Result:
    return {"resources": [{"uri": uri, **entry["meta"]} for uri, entry in RESOURCES.items()]}


async def list_resource_templates(ctx: Ctx, params: types.PaginatedRequestParams | None) -> Result:
    template = {
        "uriTemplate": f"{TEMPLATE_PREFIX}{{id}}{TEMPLATE_SUFFIX}",
        "name": "template",
        "description": "A resource template with one parameter",
        "mimeType": "application/json",
    }
    return {"resourceTemplates": [template]}


async def read_resource(ctx: Ctx, params: types.ReadResourceRequestParams) -> Result:
    uri = str(params.uri)
    entry = RESOURCES.get(uri)
    if entry is not None:
        return {"contents": [{"uri": uri, **entry["contents"]}]}
    if uri.startswith(TEMPLATE_PREFIX) and uri.endswith(TEMPLATE_SUFFIX):
        ident = uri[len(TEMPLATE_PREFIX) : -len(TEMPLATE_SUFFIX)]
        if ident and "/" not in ident:
            data = {"id": ident, "templateTest": True, "data": f"Data for ID: {ident}"}
            return {"contents": [{"uri": uri, "mimeType": "application/json", "text": json.dumps(data)}]}
    raise MCPError(code=types.INVALID_PARAMS, message="Resource not found", data={"uri": uri})


async def subscribe(ctx: Ctx, params: types.SubscribeRequestParams) -> Result:
    SUBSCRIPTIONS.add(str(params.uri))
    return {}


async def unsubscribe(ctx: Ctx, params: types.UnsubscribeRequestParams) -> Result:
    SUBSCRIPTIONS.discard(str(params.uri))
    return {}


# --------------------------------------------------------------------------------------
# Prompts, completion, logging
# --------------------------------------------------------------------------------------

PROMPTS: dict[str, dict[str, Any]] = {
    "test_simple_prompt": {"description": "A prompt without arguments"},
    "test_prompt_with_arguments": {
        "description": "A prompt with two required arguments",
        "arguments": [
            {"name": "arg1", "description": "First test argument", "required": True},
            {"name": "arg2", "description": "Second test argument", "required": True},
        ],
    },
    "test_prompt_with_embedded_resource": {
        "description": "A prompt that embeds a resource",
        "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": True}],
    },
    "test_prompt_with_image": {"description": "A prompt with an image"},
    "test_input_required_result_prompt": {"description": "A prompt that first asks the user for context"},
}


async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams | None) -> Result:
    return {"prompts": [{"name": name, **meta} for name, meta in PROMPTS.items()]}


def user(content: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": content}


async def get_prompt(ctx: Ctx, params: types.GetPromptRequestParams) -> Result:
    args = dict(params.arguments or {})
    name = params.name
    if name not in PROMPTS:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {name}")
    missing = [a["name"] for a in PROMPTS[name].get("arguments", []) if a.get("required") and a["name"] not in args]
    if missing:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Missing required arguments: {', '.join(missing)}")
    if name == "test_simple_prompt":
        messages = [user(text("This is a simple prompt for testing."))]
    elif name == "test_prompt_with_arguments":
        messages = [user(text(f"Prompt with arguments: arg1='{args['arg1']}', arg2='{args['arg2']}'"))]
    elif name == "test_prompt_with_embedded_resource":
        resource = {
            "uri": args["resourceUri"],
            "mimeType": "text/plain",
            "text": "Embedded resource content for testing.",
        }
        messages = [
            user({"type": "resource", "resource": resource}),
            user(text("Please process the embedded resource above.")),
        ]
    elif name == "test_input_required_result_prompt":
        responses = input_responses(ctx)
        if not is_modern(ctx):
            messages = [user(text("Use the default context."))]
        elif "user_context" not in responses:
            return input_required({"user_context": elicit_request("What context should the prompt use?", "context")})
        else:
            messages = [user(text(f"Context: {answered(responses['user_context'], 'context')}"))]
    else:
        messages = [
            user({"type": "image", "data": PNG_1X1, "mimeType": "image/png"}),
            user(text("Please analyze the image above.")),
        ]
    return {"description": PROMPTS[name]["description"], "messages": messages}


async def complete(ctx: Ctx, params: types.CompleteRequestParams) -> Result:
    candidates = ["paris", "park", "party", "hello", "world"]
    values = [c for c in candidates if c.startswith(params.argument.value)]
    return {"completion": {"values": values, "total": len(values), "hasMore": False}}


async def set_logging_level(ctx: Ctx, params: types.SetLevelRequestParams) -> Result:
    return {}


# --------------------------------------------------------------------------------------
# Results: handlers build wire-shaped dicts; the SDK's result models add what each
# protocol era requires (`resultType`, cache hints) and its per-version sieve drops
# what an era does not know.
# --------------------------------------------------------------------------------------

RESULT_MODELS: dict[str, type[types.Result]] = {
    "tools/list": types.ListToolsResult,
    "tools/call": types.CallToolResult,
    "resources/list": types.ListResourcesResult,
    "resources/templates/list": types.ListResourceTemplatesResult,
    "resources/read": types.ReadResourceResult,
    "prompts/list": types.ListPromptsResult,
    "prompts/get": types.GetPromptResult,
    "completion/complete": types.CompleteResult,
}

CACHE_HINTS: dict[Any, CacheHint] = {
    "tools/list": CacheHint(ttl_ms=60_000, scope="public"),
    "prompts/list": CacheHint(ttl_ms=60_000, scope="public"),
    "resources/list": CacheHint(ttl_ms=60_000, scope="public"),
    "resources/templates/list": CacheHint(ttl_ms=60_000, scope="public"),
    "resources/read": CacheHint(ttl_ms=0, scope="private"),
}


def typed(method: str, handler: Callable[[Ctx, Any], Awaitable[Result]]):
    model = RESULT_MODELS[method]

    async def run(ctx: Ctx, params: Any) -> types.Result:
        result = await handler(ctx, params)
        if result.get("resultType") == "input_required":
            return types.InputRequiredResult.model_validate(result)
        return model.model_validate(result)

    return run


def build_server() -> Server[Any]:
    return Server(
        SERVER_NAME,
        version="1.0.0",
        cache_hints=CACHE_HINTS,
        get_tool_input_schema=tool_input_schema,
        on_list_tools=typed("tools/list", list_tools),
        on_call_tool=typed("tools/call", call_tool),
        on_list_resources=typed("resources/list", list_resources),
        on_list_resource_templates=typed("resources/templates/list", list_resource_templates),
        on_read_resource=typed("resources/read", read_resource),
        on_subscribe_resource=subscribe,
        on_unsubscribe_resource=unsubscribe,
        on_list_prompts=typed("prompts/list", list_prompts),
        on_get_prompt=typed("prompts/get", get_prompt),
        on_completion=typed("completion/complete", complete),
        on_set_logging_level=set_logging_level,
    )


# --------------------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------------------


class MemoryEventStore(EventStore):
    """Keeps every SSE event so a client can resume a stream with Last-Event-ID (SEP-1699)."""

    def __init__(self) -> None:
        self._events: list[tuple[str, str, types.JSONRPCMessage | None]] = []
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: str, message: types.JSONRPCMessage | None) -> str:
        event_id = f"{stream_id}_{next(self._ids)}"
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        position = next((i for i, (event_id, _, _) in enumerate(self._events) if event_id == last_event_id), None)
        if position is None:
            return None
        stream_id = self._events[position][1]
        for event_id, stream, message in self._events[position + 1 :]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


async def serve_stdio() -> None:
    from mcp.server.stdio import stdio_server

    server = build_server()
    options = server.create_initialization_options(NotificationOptions())
    async with stdio_server() as (read, write):
        await server.run(read, write, options)


def serve_http(port: int) -> None:
    import uvicorn

    server = build_server()
    app = server.streamable_http_app(host="127.0.0.1", event_store=MemoryEventStore(), retry_interval=500)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("transport", choices=("stdio", "http"))
    parser.add_argument("--port", type=int, default=0, help="http: the port on 127.0.0.1")
    args = parser.parse_args(argv)
    if args.transport == "stdio":
        anyio.run(serve_stdio)
    else:
        serve_http(args.port)


if __name__ == "__main__":
    main(sys.argv[1:])
