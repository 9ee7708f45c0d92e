// An MCP client that starts from nothing but the gateway's URL and does what the MCP
// authorization spec asks of it, with the official TypeScript SDK: the 401 sends it to the
// protected-resource metadata, that to the authorization server, where it registers itself,
// logs in by authorization code with PKCE (the login and consent pages of the test issuer
// are filled in here, headlessly), and then calls a tool with the token it got.
//
//   node oauth_login.mjs GATEWAY_URL LOGIN TOOL
//
// Prints one JSON line: {"text": <the tool's answer>, "scope": <the token's scope>}.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [gatewayUrl, login, tool] = process.argv.slice(2);
const REDIRECT = "http://127.0.0.1:9/callback";

class HeadlessProvider {
  constructor() {
    this.client = undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.code = undefined;
  }
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: "toolgate e2e client",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(information) {
    this.client = information;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
  async redirectToAuthorization(url) {
    this.code = await logIn(url);
  }
}

// Follows the authorization request through the issuer's pages as a browser would,
// submitting the login form and then the consent form, until it redirects to REDIRECT.
async function logIn(authorizationUrl) {
  const cookies = new Map();
  let url = authorizationUrl.href;
  let form;
  for (let step = 0; step < 20; step += 1) {
    const headers = { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join("; ") };
    const init = { headers, redirect: "manual" };
    if (form) {
      init.method = "POST";
      init.body = form;
      headers["content-type"] = "application/x-www-form-urlencoded";
    }
    const response = await fetch(url, init);
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(";");
      const at = pair.indexOf("=");
      cookies.set(pair.slice(0, at), pair.slice(at + 1));
    }
    form = undefined;
    const location = response.headers.get("location");
    if (location) {
      const next = new URL(location, url);
      if (next.href.startsWith(REDIRECT)) {
        const code = next.searchParams.get("code");
        if (!code) throw new Error(`the issuer refused: ${next.search}`);
        return code;
      }
      url = next.href;
      continue;
    }
    const page = await response.text();
    if (response.status !== 200) throw new Error(`${url} answered ${response.status}: ${page.slice(0, 500)}`);
    const action = page.match(/<form[^>]*action="([^"]+)"/);
    if (!action) throw new Error(`no form at ${url}: ${page.slice(0, 500)}`);
    url = new URL(action[1], url).href;
    form = page.includes('name="login"')
      ? `prompt=login&login=${encodeURIComponent(login)}&password=unused`
      : "prompt=consent";
  }
  throw new Error("the login did not end");
}

const provider = new HeadlessProvider();
const connect = async () => {
  const transport = new StreamableHTTPClientTransport(new URL(gatewayUrl), { authProvider: provider });
  const client = new Client({ name: "toolgate-e2e", version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
};

try {
  await connect();
  throw new Error("the gateway let an unauthenticated client in");
} catch (error) {
  if (!(error instanceof UnauthorizedError)) throw error;
}
// The SDK stopped at the redirect; the code from the headless login finishes it.
const transport = new StreamableHTTPClientTransport(new URL(gatewayUrl), { authProvider: provider });
await transport.finishAuth(provider.code);
const { client } = await connect();
const result = await client.callTool({ name: tool, arguments: {} });
console.log(JSON.stringify({ text: result.content[0].text, scope: provider.saved.scope }));
await client.close();
