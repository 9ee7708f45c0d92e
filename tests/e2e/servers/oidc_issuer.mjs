// A real OAuth 2.1 authorization server for the end-to-end tests: `oidc-provider` on
// 127.0.0.1, issuing JWT access tokens (RFC 9068) for a resource (RFC 8707 resource
// indicators) through client credentials or an authorization-code login with PKCE (dynamic
// client registration on), with introspection on.
//
// Environment:
//   ISSUER_PORT     port to listen on (0: any; the URL is printed as "issuer on <url>")
//   RESOURCE        the default resource (the gateway's canonical URL)
//   SIGNING_KEYS    JSON: a list of private JWKs; the first signs, all are published
//
// Clients (secret = id + "-secret"):
//   svc         any scope of "tools:call payments:write"
//   shortlived  the same, tokens valid for 1 second
//   opaque      the same, opaque (introspectable) tokens
//   gateway     the resource server's own client, which introspects tokens
//   upstream    a gateway's client for its upstream: tokens valid for 3 seconds
import Provider from "oidc-provider";

const port = Number(process.env.ISSUER_PORT || 0);
const resource = process.env.RESOURCE;
const keys = JSON.parse(process.env.SIGNING_KEYS);
const SCOPES = "tools:call payments:write";

const client = (id) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  grant_types: ["client_credentials"],
  redirect_uris: [],
  response_types: [],
  scope: SCOPES,
});

async function main() {
  const server = (await import("node:http")).createServer();
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [client("svc"), client("shortlived"), client("opaque"), client("gateway"), client("upstream")],
    jwks: { keys },
    scopes: SCOPES.split(" "),
    features: {
      // Its login and consent pages (any login name, no password check): what
      // `clients/oauth_login.mjs` drives for an authorization-code login.
      devInteractions: { enabled: true },
      // Clients register themselves, as MCP clients do (RFC 7591).
      registration: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, indicator, requester) => ({
          scope: SCOPES,
          audience: indicator,
          accessTokenTTL: { shortlived: 1, upstream: 3 }[requester.clientId] ?? 300,
          accessTokenFormat: requester.clientId === "opaque" ? "opaque" : "jwt",
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
  });
  // Plain http on loopback: the provider would otherwise insist on https.
  provider.proxy = true;
  server.on("request", provider.callback());
  console.log(`issuer on ${issuer}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
