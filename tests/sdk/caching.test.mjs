// Conditional record reads (issue 21) seen from the official SDK: with a configured
// `Cache-Control` (Basalt's `recordCaching` settings section, saved through the SDK's
// settings service) every read works unchanged. The SDK's fetch sends no
// `If-None-Match` of its own, so it never meets a 304; a browser's HTTP cache would
// revalidate underneath it and hand it the kept body.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, newUser, target } from "./helpers.mjs";

const basalt = target === "basalt";
let s;
let ids = [];

before(async () => {
  s = await startServer();
  const pb = s.pb;
  await pb.collections.create({
    name: "notes",
    listRule: "@request.auth.id != ''",
    viewRule: "@request.auth.id != ''",
    fields: [{ name: "title", type: "text" }],
  });
  for (const title of ["one", "two", "three"]) {
    ids.push((await pb.collection("notes").create({ title })).id);
  }
  if (basalt) {
    await pb.settings.update({ recordCaching: { notes: { cacheControl: "private, max-age=30" } } });
  }
});

after(async () => {
  await s?.stop();
});

test("the settings section round-trips through the SDK", { skip: !basalt }, async () => {
  const settings = await s.pb.settings.getAll();
  assert.deepEqual(settings.recordCaching, { notes: { cacheControl: "private, max-age=30" } });
  const err = await s.pb.settings.update({ recordCaching: { nope: { cacheControl: "private" } } }).then(
    () => null,
    (e) => e,
  );
  assert.equal(err?.status, 400);
  assert.ok(err.response.data.recordCaching.nope, JSON.stringify(err.response));
});

test("reads work unchanged with a configured Cache-Control", async () => {
  const { pb } = await newUser(s, "reader@example.com");
  const one = await pb.collection("notes").getOne(ids[0]);
  assert.equal(one.title, "one");
  const page = await pb.collection("notes").getList(1, 2, { sort: "title" });
  assert.equal(page.totalItems, 3);
  assert.deepEqual(page.items.map((r) => r.title), ["one", "three"]);
  const all = await pb.collection("notes").getFullList({ sort: "-title" });
  assert.deepEqual(all.map((r) => r.title), ["two", "three", "one"]);
  const first = await pb.collection("notes").getFirstListItem("title = 'two'");
  assert.equal(first.id, ids[1]);
  // A write is seen by the next read: nothing is kept server-side.
  await s.pb.collection("notes").update(ids[0], { title: "uno" });
  assert.equal((await pb.collection("notes").getOne(ids[0])).title, "uno");
});

test("the answers carry the configured headers and revalidate", { skip: !basalt }, async () => {
  const { pb } = await newUser(s, "raw@example.com");
  const url = `${s.url}/api/collections/notes/records/${ids[1]}`;
  const headers = { Authorization: pb.authStore.token };
  const first = await fetch(url, { headers });
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("cache-control"), "private, max-age=30");
  assert.match(first.headers.get("vary") ?? "", /authorization/i);
  const tag = first.headers.get("etag");
  assert.match(tag, /^"[0-9a-f]{32}"$/);
  await first.arrayBuffer();
  const again = await fetch(url, { headers: { ...headers, "If-None-Match": tag } });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get("etag"), tag);
});
