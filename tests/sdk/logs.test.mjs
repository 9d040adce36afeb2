// Request logs through the official SDK (pb.logs): the list with filter and sort over
// json paths, one entry, hourly stats, PocketBase's 404, and who may read them. Both
// servers write entries in the background (PocketBase every few seconds), so the tests
// poll with a bounded wait.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, newUser, rejects } from "./helpers.mjs";

let s;
let pb;

before(async () => {
  s = await startServer();
  pb = s.pb;
});

after(async () => {
  await s?.stop();
});

/// Polls pb.logs.getList(1, 100, options) until `done(page)` holds, for at most 30 s.
async function listUntil(options, done) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const page = await pb.logs.getList(1, 100, options);
    if (done(page)) return page;
    if (Date.now() > deadline) throw new Error(`timed out waiting for logs: ${JSON.stringify(options)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test("requests are listed, filtered and counted", async () => {
  const anon = s.client();
  const missing = await rejects(anon.collection("no_such_collection").getList(1, 5, { query: { marker: "sdk" } }));
  assert.equal(missing.status, 404);
  await pb.collection("users").getList(1, 1);

  const page = await listUntil({ filter: 'data.url ~ "no_such_collection"' }, (p) => p.items.length > 0);
  const entry = page.items[0];
  assert.equal(entry.level, 8);
  assert.equal(entry.message.startsWith("GET /api/collections/no_such_collection/records?"), true);
  assert.equal(entry.data.type, "request");
  assert.equal(entry.data.method, "GET");
  assert.equal(entry.data.status, 404);
  assert.equal(entry.data.auth, "");
  assert.equal(entry.data.remoteIP, "127.0.0.1");
  assert.equal(entry.data.userIP, "127.0.0.1");
  assert.equal(typeof entry.data.execTime, "number");
  assert.equal(typeof entry.data.userAgent, "string");
  assert.equal(entry.data.error, "Missing collection context.");
  assert.match(entry.created, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(entry.id.length, 15);

  const su = await listUntil(
    { filter: 'data.auth = "_superusers" && data.url = "/api/collections/users/records?page=1&perPage=1"' },
    (p) => p.items.length > 0,
  );
  assert.equal(su.items[0].level, 0);
  assert.equal(su.items[0].data.status, 200);

  const one = await pb.logs.getOne(entry.id);
  assert.deepEqual(one, entry);
  const notFound = await rejects(pb.logs.getOne("nosuchlogentry"));
  assert.equal(notFound.status, 404);

  const sorted = await pb.logs.getList(1, 2, { sort: "-@rowid" });
  assert.equal(sorted.items.length, 2);
  assert.ok(sorted.totalItems >= 2);

  const stats = await pb.logs.getStats();
  assert.ok(stats.length >= 1);
  assert.match(stats[0].date, /^\d{4}-\d\d-\d\d \d\d:00:00\.000Z$/);
  const all = stats.reduce((n, h) => n + h.total, 0);
  const errors = (await pb.logs.getStats({ filter: "data.status >= 400" })).reduce((n, h) => n + h.total, 0);
  assert.ok(errors >= 1 && errors < all, `${errors} of ${all}`);

  const bad = await rejects(pb.logs.getList(1, 10, { filter: "bad((" }));
  assert.equal(bad.status, 400);
});

test("only superusers read the logs", async () => {
  const anon = s.client();
  assert.equal((await rejects(anon.logs.getList(1, 10))).status, 401);
  assert.equal((await rejects(anon.logs.getStats())).status, 401);
  const { pb: user } = await newUser(s, "logs-user@example.com");
  assert.equal((await rejects(user.logs.getList(1, 10))).status, 403);
  assert.equal((await rejects(user.logs.getStats())).status, 403);
  assert.equal((await rejects(user.logs.getOne("anything"))).status, 403);
});
