// Realtime through the SDK's RealtimeService (SSE): who sees which events under the access
// rules, subscription options, a rule change, token expiry and revocation, unsubscribe,
// and reconnect with re-subscription after a server restart.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { EventSource } from "eventsource";
import { startServer, newUser, client, target, SU_EMAIL, SU_PASSWORD } from "./helpers.mjs";

// Node has no EventSource; the SDK expects the browser global.
globalThis.EventSource = EventSource;

let s;
let pb;
let ann;
let bob;
const open = [];

before(async () => {
  s = await startServer();
  pb = s.pb;
  await pb.collections.create({
    name: "notes",
    listRule: "owner = @request.auth.id || public = true",
    viewRule: "owner = @request.auth.id || public = true",
    createRule: null,
    fields: [
      { name: "title", type: "text" },
      { name: "public", type: "bool" },
      { name: "owner", type: "relation", collectionId: "_pb_users_auth_", maxSelect: 1 },
    ],
  });
  ann = await newUser(s, "ann@example.com");
  bob = await newUser(s, "bob@example.com");
});

after(async () => {
  for (const c of open) c.realtime.unsubscribe().catch(() => {});
  if (s) await s.stop();
});

/// Subscribes `sdk` to `topic` and collects the events it receives.
async function collect(sdk, topic, options) {
  const events = [];
  const unsubscribe = await sdk.collection(topic.split("/")[0]).subscribe(topic.split("/")[1], (e) => events.push(e), options);
  open.push(sdk);
  return { events, unsubscribe };
}

async function waitFor(what, cond, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const titles = (c) => c.events.map((e) => `${e.action}:${e.record.title}`);

/// Events are delivered in commit order, so once every collector saw a later public
/// marker record, nothing more from before it can arrive.
async function settle(collectors, marker) {
  await pb.collection("notes").create({ title: marker, public: true });
  await waitFor(`marker ${marker}`, () => collectors.every((c) => c.events.some((e) => e.record.title === marker)));
  for (const c of collectors) c.events.splice(c.events.findIndex((e) => e.record.title === marker), 1);
}

test("anonymous, owner and another user see exactly what the list rule allows", async () => {
  const anon = await collect(client(s.url), "notes/*");
  const a = await collect(ann.pb, "notes/*");
  const b = await collect(bob.pb, "notes/*");
  const priv = await pb.collection("notes").create({ title: "private", owner: ann.rec.id });
  await pb.collection("notes").create({ title: "public", public: true, owner: ann.rec.id });
  await pb.collection("notes").update(priv.id, { title: "private2" });
  await pb.collection("notes").delete(priv.id);
  await settle([anon, a, b], "m1");
  assert.deepEqual(titles(anon), ["create:public"]);
  assert.deepEqual(titles(b), ["create:public"]);
  assert.deepEqual(titles(a), ["create:private", "create:public", "update:private2", "delete:private2"]);
  // The record is shaped as the record API shapes it.
  const ev = a.events[0];
  assert.equal(ev.record.collectionName, "notes");
  assert.equal(ev.record.owner, ann.rec.id);
  for (const c of [anon, a, b]) await c.unsubscribe();
});

test("a record topic follows the view rule; options filter and expand apply", async () => {
  const note = await pb.collection("notes").create({ title: "one", owner: ann.rec.id });
  const a = await collect(ann.pb, `notes/${note.id}`, { expand: "owner" });
  const b = await collect(bob.pb, `notes/${note.id}`);
  const f = await collect(ann.pb, "notes/*", { filter: "title ~ 'keep'" });
  const all = await collect(bob.pb, "notes/*");
  await pb.collection("notes").update(note.id, { title: "two" });
  await pb.collection("notes").create({ title: "keep me", owner: ann.rec.id });
  await pb.collection("notes").create({ title: "drop me", owner: ann.rec.id });
  await settle([all], "m2");
  await waitFor("ann's record event", () => a.events.length === 1);
  await waitFor("ann's filtered event", () => f.events.length >= 1);
  assert.deepEqual(titles(a), ["update:two"]);
  assert.equal(a.events[0].record.expand.owner.id, ann.rec.id);
  // The owner sees their own email in the expanded record; nobody sees the password hash.
  assert.equal(a.events[0].record.expand.owner.email, "ann@example.com");
  assert.equal(a.events[0].record.expand.owner.password, undefined);
  assert.deepEqual(titles(f).filter((t) => !t.endsWith("m2")), ["create:keep me"]);
  assert.deepEqual(b.events, []);
  assert.deepEqual(titles(all), []);
  for (const c of [a, b, f, all]) await c.unsubscribe();
});

test("a rule change applies to the next event", async () => {
  const b = await collect(bob.pb, "notes/*");
  const anon = await collect(client(s.url), "notes/*");
  await pb.collection("notes").create({ title: "before", owner: ann.rec.id });
  await settle([b, anon], "m3");
  assert.deepEqual(titles(b), []);
  await pb.collections.update("notes", { listRule: "@request.auth.id != ''" });
  await pb.collection("notes").create({ title: "after", owner: ann.rec.id });
  await settle([b], "m4");
  assert.deepEqual(titles(b), ["create:after"]);
  assert.deepEqual(titles(anon), []);
  await pb.collections.update("notes", { listRule: null });
  await pb.collection("notes").create({ title: "locked", public: true });
  await pb.collections.update("notes", { listRule: "owner = @request.auth.id || public = true" });
  await settle([b, anon], "m5");
  assert.deepEqual(titles(b), ["create:after"]);
  assert.deepEqual(titles(anon), []);
  for (const c of [b, anon]) await c.unsubscribe();
});

test("a password change revokes the subscriber's identity", { skip: target === "pocketbase" && "PocketBase keeps the client's auth record after a password change" }, async () => {
  const carl = await newUser(s, "carl@example.com");
  const c = await collect(carl.pb, "notes/*");
  await pb.collection("notes").create({ title: "carl 1", owner: carl.rec.id });
  await settle([c], "m6");
  assert.deepEqual(titles(c), ["create:carl 1"]);
  await pb.collection("users").update(carl.rec.id, { password: "Other-pass-123", passwordConfirm: "Other-pass-123" });
  await pb.collection("notes").create({ title: "carl 2", owner: carl.rec.id });
  await settle([c], "m7");
  assert.deepEqual(titles(c), ["create:carl 1"]);
  await c.unsubscribe();
});

test("an expired token stops delivery", { skip: target === "pocketbase" && "PocketBase does not re-check token expiry per event" }, async () => {
  await pb.collections.create({
    name: "members",
    type: "auth",
    listRule: "id = @request.auth.id",
    viewRule: "id = @request.auth.id",
    authToken: { duration: 10 },
    fields: [],
  });
  await pb.collections.update("notes", { listRule: "@request.auth.collectionName = 'members' || public = true" });
  await pb.collection("members").create({ email: "m@example.com", password: "Member-pass-1", passwordConfirm: "Member-pass-1" });
  const m = client(s.url);
  await m.collection("members").authWithPassword("m@example.com", "Member-pass-1");
  const c = await collect(m, "notes/*");
  await pb.collection("notes").create({ title: "fresh" });
  await settle([c], "m8");
  assert.deepEqual(titles(c), ["create:fresh"]);
  // Wait out the token (exp has one-second resolution).
  const exp = JSON.parse(Buffer.from(m.authStore.token.split(".")[1], "base64url").toString()).exp;
  await new Promise((r) => setTimeout(r, Math.max(0, exp * 1000 - Date.now()) + 1100));
  await pb.collection("notes").create({ title: "stale" });
  await settle([c], "m9");
  assert.deepEqual(titles(c), ["create:fresh"]);
  await pb.collections.update("notes", { listRule: "owner = @request.auth.id || public = true" });
  await c.unsubscribe();
});

test("unsubscribe stops events; other subscriptions of the client go on", async () => {
  const sdk = ann.pb;
  const one = await collect(sdk, "notes/*");
  const other = await collect(sdk, "notes/*", { filter: "public = true" });
  await one.unsubscribe();
  await pb.collection("notes").create({ title: "after unsubscribe", public: true });
  await waitFor("the remaining subscription", () => other.events.length === 1);
  assert.deepEqual(titles(one), []);
  await other.unsubscribe();
});

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

test("the SDK reconnects after a server restart and re-subscribes", { skip: target === "pocketbase" && "restarts the Basalt binary" }, async () => {
  const bin = process.env.BASALT_BIN || join(process.env.CARGO_TARGET_DIR || resolve(import.meta.dirname, "../../target"), "debug", "basalt");
  const dir = mkdtempSync(join(tmpdir(), "basalt-rt-"));
  spawnSync(bin, ["superuser", "upsert", SU_EMAIL, SU_PASSWORD, "--dir", dir], { stdio: "ignore", timeout: 30000 });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const serve = () => spawn(bin, ["serve", "--http", `127.0.0.1:${port}`, "--dir", dir], { stdio: "ignore" });
  const healthy = async () => {
    for (let i = 0; i < 400; i++) {
      try {
        if ((await fetch(`${url}/api/health`)).ok) return;
      } catch {}
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("server did not start");
  };
  let child = serve();
  try {
    await healthy();
    const su = client(url);
    await su.collection("_superusers").authWithPassword(SU_EMAIL, SU_PASSWORD);
    await su.collections.create({ name: "pings", listRule: "", viewRule: "", fields: [{ name: "n", type: "number" }] });
    const sub = client(url);
    const ids = [];
    await sub.realtime.subscribe("PB_CONNECT", (e) => ids.push(e.clientId));
    const c = await collect(sub, "pings/*");
    await waitFor("the first connect", () => ids.length === 1);
    await su.collection("pings").create({ n: 1 });
    await waitFor("event 1", () => c.events.length === 1);
    // A graceful stop ends the stream; the SDK reconnects to the new process.
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    child = serve();
    await healthy();
    await waitFor("the reconnect", () => ids.length === 2, 20000);
    assert.notEqual(ids[0], ids[1]);
    await su.collection("pings").create({ n: 2 });
    await waitFor("event 2", () => c.events.length === 2);
    assert.deepEqual(c.events.map((e) => e.record.n), [1, 2]);
    sub.realtime.unsubscribe().catch(() => {});
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
