// Collections and records through the official SDK: CRUD, every filter form, sort, paging,
// fields, expand and update modifiers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, rejects } from "./helpers.mjs";

let s;
let pb;
const ids = {};

before(async () => {
  s = await startServer();
  pb = s.pb;
  const orgs = await pb.collections.create({ name: "orgs", listRule: "", viewRule: "", fields: [{ name: "name", type: "text" }] });
  await pb.collections.update("users", {
    fields: [...(await pb.collections.getOne("users")).fields, { name: "org", type: "relation", collectionId: orgs.id, maxSelect: 1 }],
  });
  const tags = await pb.collections.create({ name: "tags", listRule: "", viewRule: "", fields: [{ name: "label", type: "text" }] });
  const posts = await pb.collections.create({
    name: "posts",
    listRule: "",
    viewRule: "",
    fields: [
      { name: "title", type: "text", required: true },
      { name: "body", type: "editor" },
      { name: "views", type: "number" },
      { name: "public", type: "bool" },
      { name: "cats", type: "select", values: ["a", "b", "c"], maxSelect: 3 },
      { name: "author", type: "relation", collectionId: "_pb_users_auth_", maxSelect: 1 },
      { name: "tags", type: "relation", collectionId: tags.id, maxSelect: 5 },
      { name: "meta", type: "json" },
      { name: "when", type: "date" },
    ],
  });
  await pb.collections.create({
    name: "comments",
    listRule: "",
    viewRule: "",
    fields: [
      { name: "text", type: "text" },
      { name: "post", type: "relation", collectionId: posts.id, maxSelect: 1, cascadeDelete: true },
    ],
  });
  const org = await pb.collection("orgs").create({ name: "Acme" });
  ids.ann = (await pb.collection("users").create({ email: "ann@example.com", password: "User-pass-123", passwordConfirm: "User-pass-123", name: "Ann", org: org.id })).id;
  ids.bob = (await pb.collection("users").create({ email: "bob@example.com", password: "User-pass-123", passwordConfirm: "User-pass-123", name: "Bob" })).id;
  ids.red = (await pb.collection("tags").create({ label: "red" })).id;
  ids.blue = (await pb.collection("tags").create({ label: "blue" })).id;
  const rows = [
    { title: "Alpha", views: 10, public: true, cats: ["a", "b"], author: ids.ann, tags: [ids.red, ids.blue], meta: { n: 1, deep: { k: "x" } }, when: "2020-01-01 00:00:00.000Z", body: "<p>Hello <b>rich</b> world of text</p>" },
    { title: "beta", views: 5, public: false, cats: ["b"], author: ids.bob, tags: [ids.blue], meta: { n: 2 }, when: "2099-01-01 00:00:00.000Z" },
    { title: "Gamma 100%", views: 0, public: false, cats: [], author: "", tags: [], meta: null },
    { title: "delta_x", views: 7, public: true, cats: ["c"], author: ids.ann, tags: [ids.red], meta: [1, 2] },
  ];
  for (const r of rows) {
    ids[r.title] = (await pb.collection("posts").create(r)).id;
  }
  await pb.collection("comments").create({ text: "nice", post: ids.Alpha });
  await pb.collection("comments").create({ text: "meh", post: ids.Alpha });
  await pb.collection("comments").create({ text: "nice too", post: ids.beta });
});

after(async () => s && (await s.stop()));

async function titles(filter, options = {}) {
  const list = await pb.collection("posts").getFullList({ filter, sort: "title", ...options });
  return list.map((r) => r.title);
}

test("every filter form matches what PocketBase matches", async () => {
  const cases = [
    ["views > 5", ["Alpha", "delta_x"]],
    ["views >= 5", ["Alpha", "beta", "delta_x"]],
    ["views < 5", ["Gamma 100%"]],
    ["views <= 5", ["Gamma 100%", "beta"]],
    ["views = 10", ["Alpha"]],
    ["views != 10", ["Gamma 100%", "beta", "delta_x"]],
    ["public = true", ["Alpha", "delta_x"]],
    ["public = false && views > 1", ["beta"]],
    ["title ~ 'ALPHA'", ["Alpha"]],
    ["title !~ 'a'", []],
    // A value with its own % is the whole LIKE pattern.
    ["title ~ '100%'", []],
    ["title ~ '%100%'", ["Gamma 100%"]],
    ["title ~ 'a_x'", ["delta_x"]],
    ["(views > 8 || title = 'beta') && public = true", ["Alpha"]],
    ["views > 8 || title = 'beta' && public = true", ["Alpha"]],
    ["author = null", ["Gamma 100%"]],
    ["author != ''", ["Alpha", "beta", "delta_x"]],
    ["meta = null", ["Gamma 100%"]],
    ["author.name = 'Ann'", ["Alpha", "delta_x"]],
    ["author.org.name = 'Acme'", ["Alpha", "delta_x"]],
    ["tags.label ?= 'blue'", ["Alpha", "beta"]],
    ["tags.label = 'blue'", ["beta"]],
    ["tags.label ?!= 'blue'", ["Alpha", "Gamma 100%", "delta_x"]],
    // A multi-valued field compares as its JSON text unless `:each` asks for its items.
    ["cats ?= 'b'", []],
    ['cats = \'["b"]\'', ["beta"]],
    ["cats ~ 'b'", ["Alpha", "beta"]],
    ["cats:each ?= 'b'", ["Alpha", "beta"]],
    ["cats:each = 'b'", ["beta"]],
    ["cats:length = 2", ["Alpha"]],
    ["cats:each ?= 'c'", ["delta_x"]],
    ["tags:length = 0", ["Gamma 100%"]],
    ["title:lower = 'alpha'", ["Alpha"]],
    ["comments_via_post.text ?~ 'nice'", ["Alpha", "beta"]],
    ["meta.n = 2", ["beta"]],
    ["meta.deep.k = 'x'", ["Alpha"]],
    ["when < @now && when != ''", ["Alpha"]],
    ["when > @todayStart", ["beta"]],
    ["@collection.comments.post ?= id && @collection.comments.text ?= 'meh'", ["Alpha"]],
    ["views ?> 6", ["Alpha", "delta_x"]],
    ["views ?>= 10 || views ?< 1", ["Alpha", "Gamma 100%"]],
    ["views ?<= 0", ["Gamma 100%"]],
    ["title ?~ 'et'", ["beta"]],
    ["title ?!~ 'a'", []],
  ];
  for (const [filter, want] of cases) {
    assert.deepEqual(await titles(filter), want, filter);
  }
});

test("filter params are values, never syntax", async () => {
  assert.deepEqual(await titles(pb.filter("title = {:t}", { t: "beta" })), ["beta"]);
  assert.deepEqual(await titles(pb.filter("title = {:t}", { t: "x' || 1=1 || title = '" })), []);
  assert.deepEqual(await titles(pb.filter("views > {:n} && public = {:p}", { n: 6, p: true })), ["Alpha", "delta_x"]);
  assert.equal((await pb.collection("posts").getList(1, 1)).totalItems, 4, "table intact");
});

test("request values reach filters", async () => {
  const got = await pb.collection("posts").getFullList({ filter: "@request.query.mine = title", query: { mine: "beta" } });
  assert.deepEqual(got.map((r) => r.title), ["beta"]);
  const h = await pb.collection("posts").getFullList({ filter: "@request.headers.x_pick = title", headers: { "X-Pick": "Alpha" } });
  assert.deepEqual(h.map((r) => r.title), ["Alpha"]);
  const me = await pb.collection("posts").getFullList({ filter: "@request.auth.email = 'test@example.com' && views = 0" });
  assert.deepEqual(me.map((r) => r.title), ["Gamma 100%"]);
});

test("invalid filters are 400 and never 500", async () => {
  for (const filter of ["views >", "nope = 1", "author.nope = 1", "((views = 1)", "title = 'x", "@collection.nope.x = 1"]) {
    const e = await rejects(pb.collection("posts").getList(1, 10, { filter }));
    assert.equal(e.status, 400, filter);
  }
});

test("sort, paging, skipTotal, first item", async () => {
  const list = await pb.collection("posts").getList(1, 2, { sort: "-views,title" });
  assert.equal(list.totalItems, 4);
  assert.equal(list.totalPages, 2);
  assert.deepEqual(list.items.map((r) => r.title), ["Alpha", "delta_x"]);
  const p2 = await pb.collection("posts").getList(2, 2, { sort: "-views,title" });
  assert.deepEqual(p2.items.map((r) => r.title), ["beta", "Gamma 100%"]);
  const skip = await pb.collection("posts").getList(1, 2, { skipTotal: true });
  assert.equal(skip.totalItems, -1);
  assert.equal(skip.items.length, 2);
  const byAuthor = await pb.collection("posts").getFullList({ sort: "author.name,title", filter: "author != ''" });
  assert.deepEqual(byAuthor.map((r) => r.title), ["Alpha", "delta_x", "beta"]);
  const rnd = await pb.collection("posts").getFullList({ sort: "@random" });
  assert.equal(rnd.length, 4);
  const first = await pb.collection("posts").getFirstListItem("views = 7");
  assert.equal(first.title, "delta_x");
  const e = await rejects(pb.collection("posts").getFirstListItem("views = 12345"));
  assert.equal(e.status, 404);
});

test("fields and excerpts", async () => {
  const r = await pb.collection("posts").getOne(ids.Alpha, { fields: "id,title,body:excerpt(10,true)" });
  assert.deepEqual(Object.keys(r).sort(), ["body", "id", "title"]);
  assert.equal(r.body, "Hello rich...");
  const e = await pb.collection("posts").getOne(ids.Alpha, { expand: "author", fields: "title,expand.author.name" });
  assert.deepEqual(e, { title: "Alpha", expand: { author: { name: "Ann" } } });
});

test("expand: single, multiple, nested, back-relations", async () => {
  const r = await pb.collection("posts").getOne(ids.Alpha, { expand: "author.org,tags,comments_via_post" });
  assert.equal(r.expand.author.name, "Ann");
  assert.equal(r.expand.author.expand.org.name, "Acme");
  assert.deepEqual(r.expand.tags.map((t) => t.label), ["red", "blue"]);
  assert.deepEqual(r.expand.comments_via_post.map((c) => c.text).sort(), ["meh", "nice"]);
  const none = await pb.collection("posts").getOne(ids["Gamma 100%"], { expand: "author,tags" });
  assert.deepEqual(none.expand, {});
});

test("create, update with modifiers, delete with cascade", async () => {
  const r = await pb.collection("posts").create({ title: "temp", views: 1, cats: ["a"], tags: [ids.red] });
  assert.equal(r.views, 1);
  let u = await pb.collection("posts").update(r.id, { "views+": 4, "cats+": "c", "+tags": ids.blue });
  assert.equal(u.views, 5);
  assert.deepEqual(u.cats, ["a", "c"]);
  assert.deepEqual(u.tags, [ids.blue, ids.red]);
  u = await pb.collection("posts").update(r.id, { "views-": 2, "cats-": ["a"], "tags-": ids.red });
  assert.equal(u.views, 3);
  assert.deepEqual(u.cats, ["c"]);
  assert.deepEqual(u.tags, [ids.blue]);
  const c = await pb.collection("comments").create({ text: "bye", post: r.id });
  await pb.collection("posts").delete(r.id);
  assert.equal((await rejects(pb.collection("posts").getOne(r.id))).status, 404);
  assert.equal((await rejects(pb.collection("comments").getOne(c.id))).status, 404, "cascade");
});

test("validation errors carry PocketBase's codes", async () => {
  const e = await rejects(pb.collection("posts").create({ views: "many", cats: ["z"] }));
  assert.equal(e.status, 400);
  assert.equal(e.response.data.title.code, "validation_required");
  assert.equal(e.response.data.cats.code, "validation_invalid_value");
  const rel = await rejects(pb.collection("posts").create({ title: "x", author: "missing00000000" }));
  assert.equal(rel.response.data.author.code, "validation_missing_rel_records");
  assert.equal((await rejects(pb.collection("posts").getOne("nope"))).status, 404);
  assert.equal((await rejects(pb.collection("missing").getList())).status, 404);
});

test("collections: update keeps data, truncate, import, delete", async () => {
  const c = await pb.collections.create({ name: "notes", fields: [{ name: "title", type: "text" }, { name: "n", type: "number" }] });
  const r = await pb.collection("notes").create({ title: "kept", n: 3 });
  const fields = c.fields.filter((f) => f.name !== "n").map((f) => (f.name === "title" ? { ...f, name: "heading" } : f));
  await pb.collections.update("notes", { fields: [...fields, { name: "done", type: "bool" }] });
  const got = await pb.collection("notes").getOne(r.id);
  assert.equal(got.heading, "kept");
  assert.equal(got.done, false);
  assert.equal(got.n, undefined);
  await pb.collections.truncate("notes");
  assert.equal((await pb.collection("notes").getList()).totalItems, 0);
  await pb.collections.import([{ name: "imported", type: "base", fields: [{ name: "x", type: "text" }] }], false);
  assert.equal((await pb.collections.getOne("imported")).name, "imported");
  await pb.collections.delete("notes");
  assert.equal((await rejects(pb.collections.getOne("notes"))).status, 404);
  const list = await pb.collections.getFullList({ filter: "name = 'imported'" });
  assert.equal(list.length, 1);
});
