#!/bin/sh
# Install the peer proxies the benchmark compares toolgate with, at pinned versions, under
# crates/toolgate-bench/peers/ (gitignored). Idempotent: a peer already at its pinned version is
# left alone. A peer that cannot be installed is reported and skipped; the script never fails
# the benchmark because of one.
#
#   mcp-proxy (npm)  -> peers/node_modules/.bin/mcp-proxy
#   mcp-proxy (PyPI) -> peers/.venv/bin/mcp-proxy
set -u

NPM_MCP_PROXY_VERSION=6.7.19
PYPI_MCP_PROXY_VERSION=0.13.0

here=$(cd "$(dirname "$0")" && pwd)
peers="$here/peers"
mkdir -p "$peers"

# npm: mcp-proxy
installed=$(cd "$peers" && node -p "require('./node_modules/mcp-proxy/package.json').version" 2>/dev/null || true)
if [ "$installed" = "$NPM_MCP_PROXY_VERSION" ]; then
    echo "npm mcp-proxy $installed: already installed"
elif command -v npm >/dev/null 2>&1; then
    [ -f "$peers/package.json" ] || echo '{"private": true}' > "$peers/package.json"
    if (cd "$peers" && npm install --no-audit --no-fund --save-exact "mcp-proxy@$NPM_MCP_PROXY_VERSION" >/dev/null); then
        echo "npm mcp-proxy $NPM_MCP_PROXY_VERSION: installed"
    else
        echo "npm mcp-proxy: install failed; its scenarios will be skipped" >&2
    fi
else
    echo "npm mcp-proxy: npm not found; its scenarios will be skipped" >&2
fi

# PyPI: mcp-proxy
venv="$peers/.venv"
installed=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('mcp-proxy'))" 2>/dev/null || true)
if [ "$installed" = "$PYPI_MCP_PROXY_VERSION" ]; then
    echo "PyPI mcp-proxy $installed: already installed"
elif command -v python3 >/dev/null 2>&1; then
    if { [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; } &&
        "$venv/bin/python" -m pip install --quiet "mcp-proxy==$PYPI_MCP_PROXY_VERSION"; then
        echo "PyPI mcp-proxy $PYPI_MCP_PROXY_VERSION: installed"
    else
        echo "PyPI mcp-proxy: install failed; its scenarios will be skipped" >&2
    fi
else
    echo "PyPI mcp-proxy: python3 not found; its scenarios will be skipped" >&2
fi
exit 0
