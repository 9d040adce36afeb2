// Sign-in latency of auth-with-oauth2 (the manual code flow through the SDK) against a
// local oauth2-mock-server: identity from userinfo (`oidc`) and from a verified id_token
// (`oidc2`). Not part of the suite (the glob runs *.test.mjs only); run by hand:
//   BASALT_BIN=$CARGO_TARGET_DIR/debug/basalt node tests/sdk/oauth2_signin.bench.mjs [N]
//   SDK_TARGET=pocketbase node tests/sdk/oauth2_signin.bench.mjs [N]
// Bounded: N sign-ins per provider (default 200), sequential, loopback only.
import { OAuth2Server } from "oauth2-mock-server";
import { startServer, client, target } from "./helpers.mjs";

const N = Number(process.argv[2] || 200);
const oidc = new OAuth2Server();
await oidc.issuer.keys.generate("RS256");
await oidc.start(0, "127.0.0.1");
const issuer = oidc.issuer.url;
const who = { sub: "bench", email: "bench@example.com", email_verified: true };
oidc.service.on("beforeTokenSigning", (t) => {
  if (!("scope" in t.payload)) Object.assign(t.payload, who);
});
oidc.service.on("beforeUserinfo", (r) => {
  r.body = { ...who };
});
const s = await startServer();
const base = { clientId: "c", clientSecret: "x", authURL: `${issuer}/authorize`, tokenURL: `${issuer}/token` };
await s.pb.collections.update("users", {
  oauth2: {
    enabled: true,
    providers: [
      { name: "oidc", ...base, userInfoURL: `${issuer}/userinfo`, extra: { issuers: [issuer] } },
      { name: "oidc2", ...base, extra: { issuers: [issuer], jwksURL: `${issuer}/jwks` } },
    ],
  },
});
const redirect = "http://127.0.0.1:5555/cb";
try {
  for (const provider of ["oidc", "oidc2"]) {
    const times = [];
    for (let i = 0; i < N; i++) {
      const pb = client(s.url);
      const p = (await pb.collection("users").listAuthMethods()).oauth2.providers.find((x) => x.name === provider);
      const res = await fetch(p.authURL + encodeURIComponent(redirect), { redirect: "manual" });
      const code = new URL(res.headers.get("location")).searchParams.get("code");
      const t0 = performance.now();
      await pb.collection("users").authWithOAuth2Code(provider, code, p.codeVerifier, redirect);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const q = (f) => times[Math.floor(f * (times.length - 1))].toFixed(1);
    console.log(`${target} ${provider}: n=${N} p50=${q(0.5)}ms p95=${q(0.95)}ms max=${q(1)}ms`);
  }
} finally {
  await s.stop();
  await oidc.stop();
}
