// Access rules as anonymous, owner and another user; password auth and refresh; batch.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, newUser, rejects } from "./helpers.mjs";

let s;
let pb;
let ann;
let bob;

before(async () => {
  s = await startServer();
  pb = s.pb;
  await pb.collections.create({
    name: "notes",
    listRule: "owner = @request.auth.id || public = true",
    viewRule: "owner = @request.auth.id || public = true",
    createRule: "@request.auth.id != '' && owner = @request.auth.id",
    updateRule: "owner = @request.auth.id && @request.body.owner:isset = false",
    deleteRule: null,
    fields: [
      { name: "title", type: "text" },
      { name: "public", type: "bool" },
      { name: "owner", type: "relation", collectionId: "_pb_users_auth_", maxSelect: 1 },
    ],
  });
  await pb.collections.create({
    name: "links",
    listRule: "",
    viewRule: "",
    fields: [{ name: "note", type: "relation", collectionId: (await pb.collections.getOne("notes")).id, maxSelect: 1 }],
  });
  ann = await newUser(s, "ann@example.com");
  bob = await newUser(s, "bob@example.com");
});

after(async () => s && (await s.stop()));

test("rules decide who lists, views, creates, updates and deletes", async () => {
  const priv = await ann.pb.collection("notes").create({ title: "private", owner: ann.rec.id });
  const pub = await ann.pb.collection("notes").create({ title: "public", public: true, owner: ann.rec.id });
  const anon = s.client();
  assert.deepEqual((await anon.collection("notes").getFullList()).map((r) => r.title), ["public"]);
  assert.deepEqual((await ann.pb.collection("notes").getFullList({ sort: "title" })).map((r) => r.title), ["private", "public"]);
  assert.deepEqual((await bob.pb.collection("notes").getFullList()).map((r) => r.title), ["public"]);
  assert.equal((await rejects(bob.pb.collection("notes").getOne(priv.id))).status, 404);
  assert.equal((await rejects(anon.collection("notes").getOne(priv.id))).status, 404);
  assert.equal((await ann.pb.collection("notes").getOne(priv.id)).title, "private");
  // create: the rule sees the new record
  assert.equal((await rejects(bob.pb.collection("notes").create({ title: "x", owner: ann.rec.id }))).status, 400);
  assert.equal((await rejects(anon.collection("notes").create({ title: "x" }))).status, 400);
  // update: others get 404; the owner may not move ownership (rule on @request.body)
  assert.equal((await rejects(bob.pb.collection("notes").update(priv.id, { title: "hacked" }))).status, 404);
  assert.equal((await rejects(ann.pb.collection("notes").update(priv.id, { owner: bob.rec.id }))).status, 404);
  assert.equal((await ann.pb.collection("notes").update(priv.id, { title: "renamed" })).title, "renamed");
  // delete: a null rule is superusers only
  assert.equal((await rejects(ann.pb.collection("notes").delete(pub.id))).status, 403);
  await pb.collection("notes").delete(pub.id);
  // filters cannot see around rules
  assert.equal((await bob.pb.collection("notes").getList(1, 10, { filter: `id = '${priv.id}'` })).totalItems, 0);
  // expand respects the target's view rule
  const link = await pb.collection("links").create({ note: priv.id });
  assert.deepEqual((await bob.pb.collection("links").getOne(link.id, { expand: "note" })).expand, {});
  assert.equal((await ann.pb.collection("links").getOne(link.id, { expand: "note" })).expand.note.title, "renamed");
  // a null list rule is superusers only
  assert.equal((await rejects(anon.collection("_superusers").getList())).status, 403);
});

test("users see their own email only", async () => {
  const me = await ann.pb.collection("users").getOne(ann.rec.id);
  assert.equal(me.email, "ann@example.com");
  assert.equal(me.password, undefined);
  assert.equal(me.tokenKey, undefined);
  assert.equal((await rejects(bob.pb.collection("users").getOne(ann.rec.id))).status, 404);
  assert.equal((await pb.collection("users").getOne(ann.rec.id)).email, "ann@example.com");
});

test("password auth, refresh and auth methods", async () => {
  const c = s.client();
  const auth = await c.collection("users").authWithPassword("ann@example.com", "User-pass-123");
  assert.ok(c.authStore.isValid);
  assert.equal(auth.record.id, ann.rec.id);
  const refreshed = await c.collection("users").authRefresh();
  assert.equal(refreshed.record.email, "ann@example.com");
  assert.ok(refreshed.token);
  const bad = await rejects(s.client().collection("users").authWithPassword("ann@example.com", "wrong-pass-0"));
  assert.equal(bad.status, 400);
  const unknown = await rejects(s.client().collection("users").authWithPassword("nobody@example.com", "wrong-pass-0"));
  assert.equal(unknown.status, 400);
  assert.equal(unknown.message, bad.message, "no user enumeration");
  const methods = await s.client().collection("users").listAuthMethods();
  assert.equal(methods.password.enabled, true);
  assert.deepEqual(methods.password.identityFields, ["email"]);
  assert.equal((await rejects(s.client().collection("users").authRefresh())).status, 401);
});

test("changing a password needs the old one and signs out old tokens", async () => {
  const u = await newUser(s, "carol@example.com");
  const missingOld = await rejects(u.pb.collection("users").update(u.rec.id, { password: "New-pass-1234", passwordConfirm: "New-pass-1234" }));
  assert.equal(missingOld.status, 400);
  assert.ok(missingOld.response.data.oldPassword);
  const oldToken = u.pb.authStore.token;
  await u.pb.collection("users").update(u.rec.id, { oldPassword: "User-pass-123", password: "New-pass-1234", passwordConfirm: "New-pass-1234" });
  const stale = s.client();
  stale.authStore.save(oldToken, null);
  assert.equal((await rejects(stale.collection("users").authRefresh())).status, 401);
  await s.client().collection("users").authWithPassword("carol@example.com", "New-pass-1234");
});

test("batch: settings gate it, it commits all or nothing", async () => {
  const first = pb.createBatch();
  first.collection("notes").create({ title: "x" });
  const off = await rejects(first.send());
  assert.equal(off.status, 403);
  await pb.settings.update({ batch: { enabled: true, maxRequests: 10 } });
  const b = pb.createBatch();
  b.collection("notes").create({ title: "b1", owner: ann.rec.id });
  b.collection("notes").create({ title: "b2", owner: ann.rec.id });
  const res = await b.send();
  assert.equal(res.length, 2);
  assert.equal(res[0].status, 200);
  const id = res[0].body.id;
  const up = pb.createBatch();
  up.collection("notes").update(id, { title: "b1-updated" });
  up.collection("notes").delete(res[1].body.id);
  up.collection("notes").upsert({ id: "upsertedrecord1", title: "b3" });
  const out = await up.send();
  assert.deepEqual(out.map((r) => r.status), [200, 204, 200]);
  const failing = pb.createBatch();
  failing.collection("notes").update(id, { title: "never" });
  failing.collection("links").create({ note: "missing00000000" });
  const e = await rejects(failing.send());
  assert.equal(e.status, 400);
  assert.equal((await pb.collection("notes").getOne(id)).title, "b1-updated", "rolled back");
});
