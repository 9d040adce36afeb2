// OAuth2 / OpenID Connect sign-in through the SDK against a real OIDC provider
// (oauth2-mock-server on 127.0.0.1): the manual code flow, account linking and its
// hijacking attempts, forged or mismatched id_tokens, PKCE and redirect-URL checks, unlink.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac, createPublicKey } from "node:crypto";
import { OAuth2Server } from "oauth2-mock-server";
import { EventSource } from "eventsource";
import { startServer, rejects, client, target } from "./helpers.mjs";

// Node has no EventSource; the SDK's all-in-one flow listens on realtime.
globalThis.EventSource ??= EventSource;

const CLIENT_ID = "basalt-client";
const APP_REDIRECT = "http://127.0.0.1:5555/docs";

let s;
let oidc;
let issuer;
// A second provider signing with ES256 (the first signs with RS256).
let oidcEs;
let esIssuer;
// Who the provider says signs in, and how to tamper with what it returns.
let identity;
let tamperIdToken = null; // (token) => void, on the id_token's header/payload before signing
let replaceIdToken = null; // (idToken) => string, on the signed id_token

// Checks PocketBase does not make: those tests run against Basalt only.
const hardening = (why) => ({ skip: target === "pocketbase" && `Basalt hardening beyond PocketBase: ${why}` });

/// The redirect endpoint's page: ours says so in text; PocketBase (with its UI bundled)
/// redirects to the UI's success or failure route.
/// `res` was fetched with `redirect: "manual"`.
async function redirectOutcome(res) {
  const text = await res.text();
  const to = res.headers.get("location") || "";
  if (text.includes("Auth completed") || to.includes("oauth2-redirect-success")) return "completed";
  if (text.includes("Failed to authenticate") || to.includes("oauth2-redirect-failure")) return "failed";
  return `unexpected page (${res.status} ${to})`;
}

const visit = (url, init = {}) => fetch(url, { redirect: "manual", ...init });

const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

async function startProvider(alg) {
  const server = new OAuth2Server();
  await server.issuer.keys.generate(alg);
  await server.start(0, "127.0.0.1");
  server.service.on("beforeTokenSigning", (token) => {
    // The access token carries a scope; the id_token does not.
    if ("scope" in token.payload) return;
    Object.assign(token.payload, identity);
    if (tamperIdToken) tamperIdToken(token);
  });
  server.service.on("beforeUserinfo", (res) => {
    res.body = { ...identity };
  });
  server.service.on("beforeResponse", (res) => {
    if (replaceIdToken && res.body.id_token) res.body.id_token = replaceIdToken(res.body.id_token);
  });
  return server;
}

before(async () => {
  oidc = await startProvider("RS256");
  issuer = oidc.issuer.url;
  oidcEs = await startProvider("ES256");
  esIssuer = oidcEs.issuer.url;
  s = await startServer();
  await s.pb.collections.update("users", {
    oauth2: {
      enabled: true,
      mappedFields: { name: "name" },
      providers: [
        // Identity from the userinfo endpoint; trust (JWKS, issuer) from discovery.
        {
          name: "oidc",
          clientId: CLIENT_ID,
          clientSecret: "secret",
          authURL: `${issuer}/authorize`,
          tokenURL: `${issuer}/token`,
          userInfoURL: `${issuer}/userinfo`,
          displayName: "Mock IdP",
          extra: { issuers: [issuer] },
        },
        // Identity from the id_token alone, with a configured JWKS and redirect allow-list.
        {
          name: "oidc2",
          clientId: CLIENT_ID,
          clientSecret: "secret",
          authURL: `${issuer}/authorize`,
          tokenURL: `${issuer}/token`,
          extra: { jwksURL: `${issuer}/jwks`, issuers: [issuer], redirectURLs: [APP_REDIRECT] },
        },
        // ES256 id_tokens, JWKS from discovery, identity from the id_token.
        {
          name: "oidc3",
          clientId: CLIENT_ID,
          clientSecret: "secret",
          authURL: `${esIssuer}/authorize`,
          tokenURL: `${esIssuer}/token`,
          extra: { issuers: [esIssuer] },
        },
      ],
    },
  });
});

after(async () => {
  if (s) await s.stop();
  if (oidc) await oidc.stop();
  if (oidcEs) await oidcEs.stop();
});

/// Follows the provider's authorization URL (it approves at once) and returns the code
/// and state it redirects back with.
async function authorize(provider, redirect = APP_REDIRECT) {
  const res = await fetch(provider.authURL + encodeURIComponent(redirect), { redirect: "manual" });
  assert.equal(res.status, 302);
  const back = new URL(res.headers.get("location"));
  return { code: back.searchParams.get("code"), state: back.searchParams.get("state") };
}

/// The manual flow of the SDK docs: list methods, authorize, exchange the code.
async function signIn(who, { provider = "oidc", createData, pb = client(s.url), redirect, verifier } = {}) {
  identity = who;
  const methods = await pb.collection("users").listAuthMethods();
  const p = methods.oauth2.providers.find((x) => x.name === provider);
  assert.ok(p, `provider ${provider} listed`);
  const { code, state } = await authorize(p, redirect ?? APP_REDIRECT);
  assert.equal(state, p.state, "the provider returns the state it was given");
  const auth = await pb
    .collection("users")
    .authWithOAuth2Code(provider, code, verifier ?? p.codeVerifier, redirect ?? APP_REDIRECT, createData);
  return { auth, pb };
}

function person(sub, email, verified = true, name = sub) {
  return { sub, email, email_verified: verified, name };
}

async function userCount() {
  return (await s.pb.collection("users").getList(1, 1)).totalItems;
}

test("auth-methods lists the providers with PKCE and an open redirect_uri", async () => {
  const m = await client(s.url).collection("users").listAuthMethods();
  assert.equal(m.oauth2.enabled, true);
  const p = m.oauth2.providers.find((x) => x.name === "oidc");
  assert.equal(p.displayName, "Mock IdP");
  assert.equal(p.codeChallengeMethod, "S256");
  assert.ok(p.authURL.endsWith("redirect_uri="));
  const u = new URL(p.authURL);
  assert.equal(u.searchParams.get("code_challenge"), p.codeChallenge);
  assert.equal(u.searchParams.get("state"), p.state);
  assert.equal(u.searchParams.get("client_id"), CLIENT_ID);
  if (target === "basalt") assert.ok(u.searchParams.get("nonce"), "nonce bound to the verifier");
  // Secrets never reach a client.
  assert.ok(!JSON.stringify(m).includes("secret"));
});

test("the manual code flow creates a verified user, then signs the same user in", async () => {
  const { auth, pb } = await signIn(person("alice-sub", "alice@example.com"), { createData: { emailVisibility: true } });
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.meta.id, "alice-sub");
  assert.equal(auth.meta.email, "alice@example.com");
  assert.ok(auth.meta.accessToken);
  assert.equal(auth.record.email, "alice@example.com");
  assert.equal(auth.record.verified, true);
  assert.equal(auth.record.name, "alice-sub", "mapped name field");
  assert.ok(pb.authStore.isValid);
  await pb.collection("users").authRefresh();
  const again = await signIn(person("alice-sub", "alice@example.com"));
  assert.equal(again.auth.meta.isNew, false);
  assert.equal(again.auth.record.id, auth.record.id);
  // Identity from the id_token alone (oidc2) links a second provider to the same account.
  const viaToken = await signIn(person("alice-sub", "alice@example.com"), { provider: "oidc2" });
  assert.equal(viaToken.auth.record.id, auth.record.id);
  // And an ES256-signing provider.
  const viaEs = await signIn(person("alice-es-sub", "alice@example.com"), { provider: "oidc3" });
  assert.equal(viaEs.auth.record.id, auth.record.id);
  const links = await pb.collection("users").listExternalAuths(auth.record.id);
  assert.deepEqual(links.map((l) => l.provider).sort(), ["oidc", "oidc2", "oidc3"]);
});

test("pre-account takeover, password first: the squatter's password and sessions stop working", async () => {
  const squatter = client(s.url);
  await squatter.collection("users").create({ email: "victim1@example.com", password: "Squat-pass-123", passwordConfirm: "Squat-pass-123" });
  await squatter.collection("users").authWithPassword("victim1@example.com", "Squat-pass-123");
  const { auth } = await signIn(person("victim1-sub", "victim1@example.com"));
  assert.equal(auth.meta.isNew, false, "linked to the existing account by verified email");
  assert.equal(auth.record.verified, true);
  const e = await rejects(client(s.url).collection("users").authWithPassword("victim1@example.com", "Squat-pass-123"));
  assert.equal(e.status, 400);
  const r = await rejects(squatter.collection("users").authRefresh());
  assert.ok([401, 403, 404].includes(r.status), `squatter token revoked (${r.status})`);
});

test("pre-account takeover, provider first: an unverified provider email never reaches the victim's account", async () => {
  const victim = await s.pb.collection("users").create({ email: "victim2@example.com", password: "Victim-pass-123", passwordConfirm: "Victim-pass-123", verified: true });
  const before = await userCount();
  // The attacker's provider account claims the victim's address without verifying it.
  const claimed = await rejects(signIn(person("attacker-sub", "victim2@example.com", false), { createData: { email: "victim2@example.com" } }));
  assert.equal(claimed.status, 400);
  // PocketBase refuses it only because the address is taken (validation_not_unique).
  if (target === "basalt") assert.equal(claimed.response.data.email.code, "validation_oauth2_email_mismatch");
  // Without createData there is no verified email to create an account with, and no link.
  const plain = await rejects(signIn(person("attacker-sub", "victim2@example.com", false)));
  assert.equal(plain.status, 400);
  assert.equal(await userCount(), before);
  const links = await s.pb.collection("_externalAuths").getFullList({ filter: `recordRef = "${victim.id}"` });
  assert.equal(links.length, 0);
  // The victim still signs in with their password.
  await client(s.url).collection("users").authWithPassword("victim2@example.com", "Victim-pass-123");
});

test("an unverified email on an existing unverified account is not linked either", async () => {
  await s.pb.collection("users").create({ email: "victim3@example.com", password: "Victim-pass-123", passwordConfirm: "Victim-pass-123" });
  const e = await rejects(signIn(person("attacker3-sub", "victim3@example.com", false)));
  assert.equal(e.status, 400);
  await client(s.url).collection("users").authWithPassword("victim3@example.com", "Victim-pass-123");
});

test("createData.email must be the provider-verified email", hardening("PocketBase accepts another address, unverified"), async () => {
  const e = await rejects(signIn(person("carol-sub", "carol@example.com"), { createData: { email: "someone.else@example.com" } }));
  assert.equal(e.status, 400);
  assert.equal(e.response.data.email.code, "validation_oauth2_email_mismatch");
  const { auth } = await signIn(person("carol-sub", "carol@example.com"), { createData: { email: "Carol@Example.com" } });
  assert.equal(auth.record.verified, true);
});

/// Each forged or mismatched id_token is refused and creates nobody.
async function refusedIdToken(label, tamper, replace) {
  tamperIdToken = tamper;
  replaceIdToken = replace;
  const before = await userCount();
  try {
    for (const provider of ["oidc", "oidc2", "oidc3"]) {
      const e = await rejects(signIn(person(`forged-${label}`, `forged-${label}@example.com`), { provider }));
      assert.equal(e.status, 400, `${label} via ${provider}`);
    }
  } finally {
    tamperIdToken = null;
    replaceIdToken = null;
  }
  assert.equal(await userCount(), before, `${label}: nobody created`);
}

const idTokenHardening = hardening("PocketBase ignores the id_token when a userInfoURL is set, and checks no nonce");
test("id_token with the wrong issuer is refused", idTokenHardening, () => refusedIdToken("iss", (t) => (t.payload.iss = "http://127.0.0.1:1/evil")));
test("id_token for another audience is refused", idTokenHardening, () => refusedIdToken("aud", (t) => (t.payload.aud = "someone-else")));
test("id_token with another login's nonce is refused", idTokenHardening, () => refusedIdToken("nonce", (t) => (t.payload.nonce = "not-this-login")));
test("id_token without a nonce is refused", idTokenHardening, () => refusedIdToken("nononce", (t) => delete t.payload.nonce));
test("expired id_token is refused", idTokenHardening, () =>
  refusedIdToken("exp", (t) => {
    t.payload.iat = Math.floor(Date.now() / 1000) - 7200;
    t.payload.exp = Math.floor(Date.now() / 1000) - 3600;
  }));
test("id_token with alg none is refused", idTokenHardening, () =>
  refusedIdToken("none", null, (tok) => {
    const payload = JSON.parse(Buffer.from(tok.split(".")[1], "base64url"));
    return `${b64url({ alg: "none", typ: "JWT" })}.${b64url(payload)}.`;
  }));
test("id_token signed with HS256 using the provider's RSA public key is refused", idTokenHardening, async () => {
  const jwks = await (await fetch(`${issuer}/jwks`)).json();
  const pem = createPublicKey({ key: jwks.keys[0], format: "jwk" }).export({ type: "spki", format: "pem" });
  await refusedIdToken("hs256", null, (tok) => {
    const payload = JSON.parse(Buffer.from(tok.split(".")[1], "base64url"));
    const head = `${b64url({ alg: "HS256", typ: "JWT", kid: jwks.keys[0].kid })}.${b64url(payload)}`;
    return `${head}.${createHmac("sha256", pem).update(head).digest("base64url")}`;
  });
});
test("id_token with a tampered payload (bad signature) is refused", idTokenHardening, () =>
  refusedIdToken("sig", null, (tok) => {
    const [h, p, sig] = tok.split(".");
    const payload = JSON.parse(Buffer.from(p, "base64url"));
    payload.sub = "someone-else";
    return `${h}.${b64url(payload)}.${sig}`;
  }));

test("PKCE: a wrong verifier fails at the provider, a missing one is refused before it", hardening("PocketBase sends no verifier when none is given"), async () => {
  const wrong = await rejects(signIn(person("dave-sub", "dave@example.com"), { verifier: "x".repeat(43) }));
  assert.equal(wrong.status, 400);
  const missing = await rejects(signIn(person("dave-sub", "dave@example.com"), { verifier: "" }));
  assert.equal(missing.status, 400);
  assert.equal(missing.response.data.codeVerifier.code, "validation_invalid_code_verifier");
  const short = await rejects(signIn(person("dave-sub", "dave@example.com"), { verifier: "abc" }));
  assert.equal(short.response.data.codeVerifier.code, "validation_invalid_code_verifier");
});

test("redirect URL must match the provider's list exactly", hardening("extra.redirectURLs is a Basalt extension"), async () => {
  for (const redirect of ["http://127.0.0.1:5555/docss", "http://127.0.0.1:5555/docs/", "http://127.0.0.1:5555@attacker.test/docs", "http://legit@127.0.0.1:5555/docs"]) {
    const e = await rejects(signIn(person("erin-sub", "erin@example.com"), { provider: "oidc2", redirect }));
    assert.equal(e.status, 400, redirect);
    assert.equal(e.response.data.redirectURL.code, "validation_invalid_redirect_url", redirect);
  }
  // Without a list, credentials in the URL are still refused.
  const e = await rejects(signIn(person("erin-sub", "erin@example.com"), { redirect: "https://legit.example@attacker.test/cb" }));
  assert.equal(e.response.data.redirectURL.code, "validation_invalid_redirect_url");
  const ok = await signIn(person("erin-sub", "erin@example.com"), { provider: "oidc2" });
  assert.equal(ok.auth.record.email, "erin@example.com");
});

test("a signed-in user links a provider to their own account and unlinks it", async () => {
  const own = client(s.url);
  await s.pb.collection("users").create({ email: "frank@example.com", password: "Frank-pass-123", passwordConfirm: "Frank-pass-123", verified: true });
  await own.collection("users").authWithPassword("frank@example.com", "Frank-pass-123");
  // The provider account has another (verified) address: linking follows the session.
  const { auth } = await signIn(person("frank-sub", "frank.other@example.com"), { pb: own });
  assert.equal(auth.record.email, "frank@example.com");
  assert.equal(auth.meta.isNew, false);
  const links = await own.collection("users").listExternalAuths(auth.record.id);
  assert.equal(links.length, 1);
  // Someone else can neither see nor delete the link.
  const other = await signIn(person("gina-sub", "gina@example.com"));
  assert.equal((await other.pb.collection("users").listExternalAuths(auth.record.id)).length, 0);
  const denied = await rejects(other.pb.collection("_externalAuths").delete(links[0].id));
  assert.equal(denied.status, 404);
  await own.collection("users").unlinkExternalAuth(auth.record.id, "oidc");
  assert.equal((await own.collection("users").listExternalAuths(auth.record.id)).length, 0);
  // Signing in with the provider now creates nothing new for frank: it is a new identity.
  const again = await signIn(person("frank-sub", "frank.other@example.com"));
  assert.notEqual(again.auth.record.id, auth.record.id);
});

test("OAuth2 is refused when the collection does not enable it", { skip: target !== "basalt" && "basalt-only collection" }, async () => {
  await s.pb.collections.create({ name: "members", type: "auth", fields: [] });
  const e = await rejects(client(s.url).collection("members").authWithOAuth2Code("oidc", "code", "v".repeat(43), APP_REDIRECT));
  assert.equal(e.status, 403);
  const m = await client(s.url).collection("members").listAuthMethods();
  assert.equal(m.oauth2.enabled, false);
  assert.deepEqual(m.oauth2.providers, []);
});

test("authWithOAuth2 (all-in-one): the redirect reaches the SDK over realtime", async () => {
  identity = person("hana-sub", "hana@example.com");
  const pb = client(s.url);
  let page;
  const auth = await pb.collection("users").authWithOAuth2({
    provider: "oidc",
    createData: { emailVisibility: true },
    // A browser would open the URL; here the provider approves at once and its redirect
    // to /api/oauth2-redirect is followed.
    urlCallback: async (url) => {
      assert.ok(url.includes(encodeURIComponent(`${s.url}/api/oauth2-redirect`)));
      const provider = await visit(url);
      assert.equal(provider.status, 302);
      page = await redirectOutcome(await visit(provider.headers.get("location")));
    },
  });
  assert.equal(page, "completed");
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.record.email, "hana@example.com");
  assert.ok(pb.authStore.isValid);
  pb.realtime.unsubscribe();
});

test("the redirect forwards only to the realtime client named by state, once", async () => {
  const pb = client(s.url);
  const got = [];
  await pb.realtime.subscribe("@oauth2", (e) => got.push(e));
  const id = pb.realtime.clientId;
  assert.ok(id);
  try {
    // A state naming nobody (or nothing) is an error page, and nobody hears of it.
    for (const q of ["?code=c1&state=not-a-client", "?code=c1", ""]) {
      const res = await visit(`${s.url}/api/oauth2-redirect${q}`);
      assert.equal(await redirectOutcome(res), "failed", q);
    }
    const ok = await visit(`${s.url}/api/oauth2-redirect?code=c2&state=${encodeURIComponent(id)}`);
    assert.equal(await redirectOutcome(ok), "completed");
    // A replay finds the subscription gone.
    const replay = await visit(`${s.url}/api/oauth2-redirect?code=c3&state=${encodeURIComponent(id)}`);
    assert.equal(await redirectOutcome(replay), "failed");
    const deadline = Date.now() + 5000;
    while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(got, [{ state: id, code: "c2" }]);
    // The provider's POST form (Apple's response_mode=form_post) is accepted too. The
    // server dropped the used subscription: the SDK subscribes afresh, as for a new login.
    await pb.realtime.unsubscribe("@oauth2");
    await pb.realtime.subscribe("@oauth2", (e) => got.push(e));
    const post = await visit(`${s.url}/api/oauth2-redirect`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ state: pb.realtime.clientId, code: "c4", user: JSON.stringify({ name: { firstName: "A", lastName: "B" } }) }),
    });
    assert.equal(await redirectOutcome(post), "completed");
    const until = Date.now() + 5000;
    while (got.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(got[1], { state: pb.realtime.clientId, code: "c4" });
  } finally {
    pb.realtime.unsubscribe();
  }
});

test("a provider that rotates in a new signing key keeps working (cached JWKS refreshed)", async () => {
  await signIn(person("ivan-sub", "ivan@example.com"), { provider: "oidc2" });
  // The provider now signs with its keys in turn, one of them unknown to the cached JWKS.
  await oidc.issuer.keys.generate("RS256");
  for (let i = 0; i < 3; i++) {
    const { auth } = await signIn(person("ivan-sub", "ivan@example.com"), { provider: "oidc2" });
    assert.equal(auth.record.email, "ivan@example.com");
  }
});

test("a link left by a deleted account makes way for the account that now owns the address", async () => {
  const first = await signIn(person("jack-sub", "jack@example.com"));
  await s.pb.collection("users").delete(first.auth.record.id);
  const owner = await s.pb.collection("users").create({ email: "jack@example.com", password: "Jack-pass-123", passwordConfirm: "Jack-pass-123", verified: true });
  const again = await signIn(person("jack-sub", "jack@example.com"));
  assert.equal(again.auth.record.id, owner.id);
  assert.equal(again.auth.meta.isNew, false);
  await s.pb.collection("users").delete(owner.id);
  const fresh = await signIn(person("jack-sub", "jack@example.com"));
  assert.equal(fresh.auth.meta.isNew, true);
  const links = await s.pb.collection("_externalAuths").getFullList({ filter: `providerId = "jack-sub"` });
  assert.deepEqual(links.map((l) => l.recordRef), [fresh.auth.record.id]);
});

test("MFA: an OAuth2 sign-in is a first factor; a password with the mfaId completes it", async () => {
  const password = "Mfa-pass-12345";
  const user = await s.pb.collection("users").create({ email: "mfa-oauth@example.com", password, passwordConfirm: password, verified: true });
  await s.pb.collections.update("users", { mfa: { enabled: true, duration: 600, rule: "" } });
  try {
    const challenge = await rejects(signIn(person("mfa-oauth-sub", "mfa-oauth@example.com")));
    assert.equal(challenge.status, 401);
    const mfaId = challenge.response.mfaId;
    assert.ok(mfaId, "the first factor answers with an mfaId");
    // The same method again does not complete it; a different one does.
    const pb = client(s.url);
    const done = await pb.collection("users").authWithPassword("mfa-oauth@example.com", password, { mfaId });
    assert.equal(done.record.id, user.id);
    assert.ok(pb.authStore.isValid);
  } finally {
    await s.pb.collections.update("users", { mfa: { enabled: false, duration: 600, rule: "" } });
  }
});

// PocketBase 0.40.6 left the avatar empty in this setup (avatar served from loopback
// http); not yet explained, so this runs against Basalt only for now.
test("mappedFields.avatarURL downloads the provider's avatar into the file field", { skip: target === "pocketbase" && "PocketBase stores no loopback avatar here (unexplained)" }, async () => {
  // 1x1 PNG served by an "avatar CDN" on loopback.
  const png = Buffer.from(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
    "base64",
  );
  const { createServer } = await import("node:http");
  const cdn = createServer((req, res) => {
    if (req.url === "/huge.png") {
      res.writeHead(200, { "content-type": "image/png" });
      res.end(Buffer.concat([png, Buffer.alloc(6 << 20)]));
      return;
    }
    res.writeHead(200, { "content-type": "image/png" });
    res.end(png);
  });
  await new Promise((r) => cdn.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${cdn.address().port}`;
  try {
    await s.pb.collections.update("users", { oauth2: { mappedFields: { name: "name", avatarURL: "avatar" } } });
    const { auth } = await signIn({ ...person("avatar-sub", "avatar@example.com"), picture: `${base}/me.png` });
    assert.equal(auth.meta.isNew, true);
    assert.match(auth.record.avatar, /\.png$/);
    const res = await fetch(s.pb.files.getURL(auth.record, auth.record.avatar));
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), png);
    // Past the field's size limit (5 MiB by default) the sign-up goes on without it.
    const big = await signIn({ ...person("huge-avatar-sub", "huge@example.com"), picture: `${base}/huge.png` });
    assert.equal(big.auth.meta.isNew, true);
    assert.equal(big.auth.record.avatar, "");
  } finally {
    await s.pb.collections.update("users", { oauth2: { mappedFields: { name: "name", avatarURL: "" } } });
    cdn.close();
  }
});
