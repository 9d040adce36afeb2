// Differential check: one deterministic scenario of raw HTTP steps against a fresh
// PocketBase and a fresh Basalt; compares status codes and normalised bodies (ids, tokens,
// timestamps and stored files' random name suffixes replaced by stable placeholders, key
// order ignored). Uploads go as multipart bodies; a file download is compared by its
// headers (type, disposition, sandbox policy), size, and text or PNG dimensions. Prints a
// table and `differential: N/M steps match`, writes REPORT.md. Exit 0 unless --strict and
// mismatched.
import { writeFileSync } from "node:fs";
import { deflateSync } from "node:zlib";
import { join } from "node:path";
import { startServer, SU_EMAIL, SU_PASSWORD } from "../sdk/helpers.mjs";

const strict = process.argv.includes("--strict");

/// CRC-32 (PNG's), bit by bit: test images are tiny.
function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/// A `w`×`h` RGB PNG with a fixed gradient.
function png(w, h) {
  const chunk = (type, data) => {
    const td = Buffer.concat([Buffer.from(type), data]);
    const out = Buffer.alloc(8 + td.length + 4);
    out.writeUInt32BE(data.length, 0);
    td.copy(out, 4);
    out.writeUInt32BE(crc32(td), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) raw.set([x * 10, y * 10, 128], y * (1 + 3 * w) + 1 + 3 * x);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

/// A file part of a multipart step.
const file = (name, content, type = "text/plain") => ({ file: name, content, type });

/// The scenario: a list of [name, method, path, body?, as?] where `as` picks a token; a
/// `form` step sends its body as multipart parts ([name, text or file(...)]), a
/// `download` step reads a file, a `poll` step repeats its request (at most 30 s) until
/// its answer satisfies `until` (request logs are written in the background).
function scenario() {
  const s = [];
  const su = "su";
  const add = (name, method, path, body, as) => s.push({ name, method, path, body, as });
  const form = (name, method, path, parts, as) => s.push({ name, method, path, parts, as });
  const download = (name, path, as) => s.push({ name, method: "GET", path, as, download: true });
  const poll = (name, path, as, until) => s.push({ name, method: "GET", path, as, until });
  add("health", "GET", "/api/health");
  add("collections anon", "GET", "/api/collections");
  add("create tags", "POST", "/api/collections", { name: "tags", listRule: "", viewRule: "", fields: [{ name: "label", type: "text", required: true }] }, su);
  add("create posts", "POST", "/api/collections", {
    name: "posts", listRule: "public = true || owner = @request.auth.id", viewRule: "public = true || owner = @request.auth.id",
    createRule: "@request.auth.id != '' && owner = @request.auth.id", updateRule: "owner = @request.auth.id", deleteRule: null,
    fields: [
      { name: "title", type: "text", required: true, max: 20 }, { name: "views", type: "number", onlyInt: true },
      { name: "public", type: "bool" }, { name: "cats", type: "select", values: ["a", "b", "c"], maxSelect: 2 },
      { name: "owner", type: "relation", collectionId: "_pb_users_auth_", maxSelect: 1 },
      { name: "tags", type: "relation", collectionId: "$tags", maxSelect: 3 }, { name: "meta", type: "json" },
    ],
  }, su);
  add("bad collection name", "POST", "/api/collections", { name: "bad name" }, su);
  add("duplicate collection", "POST", "/api/collections", { name: "tags" }, su);
  add("view collection", "GET", "/api/collections/tags", undefined, su);
  add("user ann", "POST", "/api/collections/users/records", { email: "ann@example.com", password: "User-pass-123", passwordConfirm: "User-pass-123", name: "Ann" });
  add("user bob", "POST", "/api/collections/users/records", { email: "bob@example.com", password: "User-pass-123", passwordConfirm: "User-pass-123", name: "Bob" });
  add("user short password", "POST", "/api/collections/users/records", { email: "c@example.com", password: "x", passwordConfirm: "x" });
  add("user mismatch", "POST", "/api/collections/users/records", { email: "d@example.com", password: "User-pass-123", passwordConfirm: "nope-nope-1" });
  add("user bad email", "POST", "/api/collections/users/records", { email: "nope", password: "User-pass-123", passwordConfirm: "User-pass-123" });
  add("user duplicate", "POST", "/api/collections/users/records", { email: "ann@example.com", password: "User-pass-123", passwordConfirm: "User-pass-123" });
  add("auth ann", "POST", "/api/collections/users/auth-with-password", { identity: "ann@example.com", password: "User-pass-123" });
  add("auth wrong", "POST", "/api/collections/users/auth-with-password", { identity: "ann@example.com", password: "wrong-pass-1" });
  add("auth unknown", "POST", "/api/collections/users/auth-with-password", { identity: "zed@example.com", password: "wrong-pass-1" });
  add("auth empty", "POST", "/api/collections/users/auth-with-password", {});
  add("auth methods", "GET", "/api/collections/users/auth-methods");
  add("tag red", "POST", "/api/collections/tags/records", { label: "red" }, su);
  add("tag blue", "POST", "/api/collections/tags/records", { label: "blue" }, su);
  add("tag invalid", "POST", "/api/collections/tags/records", {}, su);
  add("post as ann", "POST", "/api/collections/posts/records", { title: "Alpha", views: 10, public: true, cats: ["a"], owner: "$ann", tags: ["$red", "$blue"], meta: { n: 1 } }, "ann");
  add("post private", "POST", "/api/collections/posts/records", { title: "Beta", views: 5, public: false, cats: ["b"], owner: "$ann", tags: ["$blue"], meta: { n: 2 } }, "ann");
  add("post for other", "POST", "/api/collections/posts/records", { title: "Evil", owner: "$ann" }, "bob");
  add("post anon", "POST", "/api/collections/posts/records", { title: "Anon" });
  add("post invalid", "POST", "/api/collections/posts/records", { title: "x".repeat(30), views: 1.5, cats: ["a", "b", "c"], owner: "$ann" }, "ann");
  add("post bad relation", "POST", "/api/collections/posts/records", { title: "R", owner: "$ann", tags: ["missing00000000"] }, "ann");
  add("post by su", "POST", "/api/collections/posts/records", { title: "Gamma", views: 0, public: true, owner: "$bob" }, su);
  add("list anon", "GET", "/api/collections/posts/records?sort=title");
  add("list ann", "GET", "/api/collections/posts/records?sort=title", undefined, "ann");
  add("list bob", "GET", "/api/collections/posts/records?sort=-views", undefined, "bob");
  add("view private as bob", "GET", "/api/collections/posts/records/$Beta", undefined, "bob");
  add("view private as ann", "GET", "/api/collections/posts/records/$Beta", undefined, "ann");
  add("view missing", "GET", "/api/collections/posts/records/missing00000000", undefined, su);
  for (const f of ["views > 4", "views >= 5 && public = false", "title ~ 'alp'", "title !~ 'a'", "tags.label ?= 'red'", "tags.label = 'blue'",
    "owner.name = 'Ann'", "cats:each ?= 'a'", "cats = '[\"b\"]'", "meta.n = 2", "tags:length = 2", "(views > 8 || title = 'Beta') && public = true",
    "title:lower = 'gamma'", "@request.auth.id = ''", "views ?> 4", "owner = null", "@collection.tags.label ?= 'red' && tags ~ @collection.tags.id"]) {
    add(`filter ${f}`, "GET", `/api/collections/posts/records?sort=title&filter=${encodeURIComponent(f)}`, undefined, su);
  }
  add("filter syntax error", "GET", `/api/collections/posts/records?filter=${encodeURIComponent("views >")}`, undefined, su);
  add("filter unknown field", "GET", `/api/collections/posts/records?filter=${encodeURIComponent("nope = 1")}`, undefined, su);
  add("filter injection", "GET", `/api/collections/posts/records?filter=${encodeURIComponent("title = 'x' OR 1=1 --")}`, undefined, su);
  add("filter hidden field", "GET", `/api/collections/users/records?filter=${encodeURIComponent("password != ''")}`, undefined, "ann");
  add("sort unknown", "GET", "/api/collections/posts/records?sort=nope", undefined, su);
  add("paging", "GET", "/api/collections/posts/records?page=2&perPage=1&sort=title", undefined, su);
  add("skipTotal", "GET", "/api/collections/posts/records?skipTotal=1&sort=title", undefined, su);
  add("fields", "GET", "/api/collections/posts/records?sort=title&fields=title,views", undefined, su);
  add("expand", "GET", "/api/collections/posts/records?sort=title&expand=owner,tags&fields=title,expand.owner.name,expand.tags.label", undefined, su);
  add("expand as anon", "GET", "/api/collections/posts/records?sort=title&expand=owner&fields=title,expand", undefined);
  add("back relation", "GET", "/api/collections/tags/records?sort=label&expand=posts_via_tags&fields=label,expand.posts_via_tags.title", undefined, su);
  add("modifiers", "PATCH", "/api/collections/posts/records/$Alpha", { "views+": 5, "cats+": "b", "tags-": "$red" }, "ann");
  add("update as bob", "PATCH", "/api/collections/posts/records/$Alpha", { title: "hacked" }, "bob");
  add("update invalid", "PATCH", "/api/collections/posts/records/$Alpha", { views: "many" }, "ann");
  add("delete as ann (null rule)", "DELETE", "/api/collections/posts/records/$Alpha", undefined, "ann");
  add("user sees self", "GET", "/api/collections/users/records/$ann", undefined, "ann");
  add("user sees other", "GET", "/api/collections/users/records/$ann", undefined, "bob");
  add("users list as bob", "GET", "/api/collections/users/records", undefined, "bob");
  add("batch disabled", "POST", "/api/batch", { requests: [{ method: "POST", url: "/api/collections/tags/records", body: { label: "x" } }] }, su);
  add("enable batch", "PATCH", "/api/settings", { batch: { enabled: true, maxRequests: 5 } }, su);
  add("batch ok", "POST", "/api/batch", { requests: [{ method: "POST", url: "/api/collections/tags/records", body: { label: "b1" } }, { method: "POST", url: "/api/collections/tags/records", body: { label: "b2" } }] }, su);
  add("batch failing", "POST", "/api/batch", { requests: [{ method: "POST", url: "/api/collections/tags/records", body: { label: "b3" } }, { method: "POST", url: "/api/collections/tags/records", body: {} }] }, su);
  add("batch left nothing", "GET", `/api/collections/tags/records?filter=${encodeURIComponent("label = 'b3'")}`, undefined, su);
  add("settings anon", "GET", "/api/settings");
  add("crons anon", "GET", "/api/crons");
  add("crons as ann", "GET", "/api/crons", undefined, "ann");
  add("settings as ann", "GET", "/api/settings", undefined, "ann");
  add("collections as ann", "GET", "/api/collections", undefined, "ann");
  add("run missing cron", "POST", "/api/crons/no_such_job", undefined, su);
  add("run otp cleanup", "POST", "/api/crons/__pbOTPCleanup__", undefined, su);
  // Request logs: who may read them, bad filters, a missing entry, and the entries of
  // requests made above (the 404 of "missing collection" below is polled for later).
  add("logs anon", "GET", "/api/logs");
  add("logs as ann", "GET", "/api/logs", undefined, "ann");
  add("log stats anon", "GET", "/api/logs/stats");
  add("log stats as ann", "GET", "/api/logs/stats", undefined, "ann");
  add("log as ann", "GET", "/api/logs/nosuchlogentry1", undefined, "ann");
  add("missing log", "GET", "/api/logs/nosuchlogentry1", undefined, su);
  add("logs bad filter", "GET", `/api/logs?filter=${encodeURIComponent("bad((")}`, undefined, su);
  add("logs unknown field", "GET", `/api/logs?filter=${encodeURIComponent("nofield = 1")}`, undefined, su);
  add("logs bad sort", "GET", "/api/logs?sort=nofield", undefined, su);
  add("log stats bad filter", "GET", `/api/logs/stats?filter=${encodeURIComponent("==")}`, undefined, su);
  add("logs none match", "GET", `/api/logs?filter=${encodeURIComponent("data.status = 999")}`, undefined, su);
  add("log stats none match", "GET", `/api/logs/stats?filter=${encodeURIComponent("data.status = 999")}`, undefined, su);
  add("truncate tags", "DELETE", "/api/collections/tags/truncate", undefined, su);
  add("delete su collection", "DELETE", "/api/collections/_superusers", undefined, su);
  add("refresh ann", "POST", "/api/collections/users/auth-refresh", undefined, "ann");
  add("refresh anon", "POST", "/api/collections/users/auth-refresh");
  add("unknown route", "GET", "/api/nope");
  add("missing collection", "GET", "/api/collections/nope/records");
  add("bad json", "POST", "/api/collections/tags/records", "{bad", su);
  const logFields = "message,level,data.type,data.method,data.url,data.status,data.auth,data.error,data.referer,data.remoteIP,data.userIP";
  const missingLog = `/api/logs?fields=${logFields}&filter=${encodeURIComponent('data.url = "/api/collections/nope/records"')}`;
  poll("log of the missing collection", missingLog, su, (j) => j?.items?.length > 0);
  const annLog = `/api/logs?fields=${logFields}&filter=${encodeURIComponent('data.auth = "users" && data.url = "/api/collections/users/auth-refresh"')}`;
  poll("log of a user's request", annLog, su, (j) => j?.items?.length > 0);

  // Filter functions and geoPoint fields (issue 24): strftime(), geoDistance(), points.
  add("create places", "POST", "/api/collections", {
    name: "places", listRule: "", viewRule: "", createRule: "",
    fields: [{ name: "name", type: "text" }, { name: "at", type: "date" }, { name: "loc", type: "geoPoint" }],
  }, su);
  const places = "/api/collections/places/records";
  add("point sofia", "POST", places, { name: "sofia", at: "2024-03-05 10:20:30.123Z", loc: { lon: 23.32, lat: 42.69 } });
  add("point london", "POST", places, { name: "london", at: "2025-12-31 23:59:59.999Z", loc: { lon: -0.12, lat: 51.5 } });
  add("point blank", "POST", places, { name: "blank" });
  add("point as text", "POST", places, { name: "text", loc: "{\"lon\":5,\"lat\":6}" });
  add("point not a point", "POST", places, { name: "odd", loc: { lon: "1", lat: 1 } });
  add("point bad lon", "POST", places, { name: "bad", loc: { lon: 181, lat: 0 } });
  add("point bad lat", "POST", places, { name: "bad", loc: { lon: 0, lat: -90.5 } });
  for (const f of ["strftime('%Y', at) = '2024'", "strftime('%Y-%m-%d %H:%M:%S', at) = '2024-03-05 10:20:30'",
    "strftime('%j %w %W %s %f', at) = '065 2 10 1709634030 30.123'", "strftime('%Y', at, '+1 day') = '2026'",
    "strftime('%Y-%m', at, 'start of year', '-1 month') = '2023-12'", "strftime('%Y', at) = ''", "strftime('%Y', at) > 2024",
    "geoDistance(loc.lon, loc.lat, 23.32, 42.69) < 1", "geoDistance(loc.lon, loc.lat, 0, 0) = 0",
    "geoDistance(loc.lon, loc.lat, -0.12, 51.5) > 2014 && geoDistance(loc.lon, loc.lat, -0.12, 51.5) < 2015",
    "geoDistance(name, 1, 0, 0) = null", "loc.lat > 45", "strftime('%Y', geoDistance(1, 1, 1, 1)) = ''",
    "geoDistance(loc.lon, loc.lat, 1) < 1", "nope(at) = 1"]) {
    add(`filter ${f}`, "GET", `${places}?sort=name&fields=name,loc&filter=${encodeURIComponent(f)}`);
  }

  // Files: uploads, modifiers, removal, validation, downloads, thumbs, protected files.
  add("create docs", "POST", "/api/collections", {
    name: "docs", listRule: "", viewRule: "", createRule: "", updateRule: "", deleteRule: "",
    fields: [
      { name: "title", type: "text" },
      { name: "one", type: "file", maxSelect: 1, maxSize: 100, mimeTypes: ["text/plain"] },
      { name: "many", type: "file", maxSelect: 2 },
      { name: "pic", type: "file", maxSelect: 1, thumbs: ["10x10", "0x8"] },
      { name: "secret", type: "file", maxSelect: 1, protected: true },
    ],
  }, su);
  const docs = "/api/collections/docs/records";
  form("upload single", "POST", docs, [["title", "Solo"], ["one", file("solo.txt", "solo text")]]);
  form("upload several", "POST", docs, [
    ["title", "Multi"], ["one", file("one.txt", "one text")], ["many", file("alpha.txt", "alpha text")],
    ["many", file("beta.txt", "beta text")], ["pic", file("pic.png", png(40, 20), "image/png")],
    ["secret", file("secret.txt", "secret text")],
  ]);
  add("remove with field-", "PATCH", `${docs}/$Multi`, { "many-": ["$alpha"] });
  form("append with field+", "PATCH", `${docs}/$Multi`, [["many+", file("gamma.txt", "gamma text")]]);
  form("too many files", "PATCH", `${docs}/$Multi`, [["many+", file("delta.txt", "delta text")]]);
  form("file too big", "POST", docs, [["one", file("big.txt", "x".repeat(200))]]);
  form("file of a wrong type", "POST", docs, [["one", file("pic.txt", png(4, 4), "text/plain")]]);
  add("remove by emptying", "PATCH", `${docs}/$Solo`, { one: "" });
  add("view after file changes", "GET", `${docs}/$Multi`);
  download("download", "/api/files/docs/$Multi/$beta");
  download("download attachment", "/api/files/docs/$Multi/$beta?download=1");
  download("download image", "/api/files/docs/$Multi/$pic");
  download("thumb listed", "/api/files/docs/$Multi/$pic?thumb=10x10");
  download("thumb listed 0xH", "/api/files/docs/$Multi/$pic?thumb=0x8");
  download("thumb unlisted", "/api/files/docs/$Multi/$pic?thumb=30x30");
  download("thumb of a non-image", "/api/files/docs/$Multi/$beta?thumb=10x10");
  download("removed file", "/api/files/docs/$Multi/$alpha");
  download("missing file", "/api/files/docs/$Multi/nope_0123456789.txt");
  download("protected, open view rule", "/api/files/docs/$Multi/$secret");
  add("restrict docs view", "PATCH", "/api/collections/docs", { viewRule: "@request.auth.id != ''" }, su);
  download("protected without token", "/api/files/docs/$Multi/$secret");
  download("unprotected, restricted view rule", "/api/files/docs/$Multi/$beta");
  add("file token anon", "POST", "/api/files/token");
  add("file token", "POST", "/api/files/token", undefined, su);
  download("protected with token", "/api/files/docs/$Multi/$secret?token=$filetoken");
  download("protected with a bad token", "/api/files/docs/$Multi/$secret?token=nope");
  return s;
}

async function run(kind) {
  const srv = await startServer(kind);
  const tokens = { su: srv.pb.authStore.token };
  const names = {}; // placeholders like $tags/$ann -> real ids
  const results = [];
  for (const step of scenario()) {
    const sub = (v) => JSON.parse(JSON.stringify(v).replace(/\$([A-Za-z]+)/g, (m, k) => names[k] ?? m));
    const path = step.path.replace(/\$([A-Za-z]+)/g, (m, k) => names[k] ?? m);
    const headers = {};
    if (step.as && tokens[step.as]) headers.Authorization = tokens[step.as];
    let body;
    if (step.parts) {
      body = new FormData();
      for (const [name, v] of step.parts) {
        if (typeof v === "string") body.append(name, sub(v));
        else body.append(name, new Blob([v.content], { type: v.type }), v.file);
      }
    } else if (step.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = typeof step.body === "string" ? step.body : JSON.stringify(sub(step.body));
    }
    let status = 0;
    let json = null;
    const deadline = Date.now() + 30000;
    for (;;) {
    try {
      const res = await fetch(srv.url + path, { method: step.method, headers, body, signal: AbortSignal.timeout(15000) });
      status = res.status;
      const type = res.headers.get("content-type") ?? "";
      if (step.download && !type.startsWith("application/json")) {
        json = await described(res);
      } else {
        const text = await res.text();
        json = text ? JSON.parse(text) : null;
      }
    } catch (e) {
      json = { error: String(e) };
    }
    if (!step.until || step.until(json) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
    }
    // Remember what later steps refer to.
    if (json && typeof json === "object") {
      if (step.name.startsWith("create ") && json.name) names[json.name] = json.id;
      if (json.label && json.id) names[json.label] = json.id;
      if (json.title && json.id) names[json.title] = json.id;
      if (step.name === "user ann") names.ann = json.id;
      if (step.name === "user bob") names.bob = json.id;
      if (step.name === "auth ann" && json.token) tokens.ann = json.token;
      if (step.name === "file token" && json.token) names.filetoken = json.token;
      // Stored file names, by their letters-only base: `$beta` is `beta_<random>.txt`.
      for (const v of Object.values(json).flat()) {
        const m = typeof v === "string" && /^([a-z]+)_[a-z0-9]{10}\.[a-z]+$/.exec(v);
        if (m) names[m[1]] = v;
      }
    }
    if (step.name === "user bob" && !tokens.bob) {
      const r = await fetch(srv.url + "/api/collections/users/auth-with-password", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ identity: "bob@example.com", password: "User-pass-123" }) });
      tokens.bob = (await r.json()).token;
    }
    results.push({ name: step.name, status, body: json });
  }
  await srv.stop();
  return { results, names };
}

/// What a file download is compared by: its headers, size, and text or image size.
async function described(res) {
  const bytes = Buffer.from(await res.arrayBuffer());
  const type = res.headers.get("content-type") ?? "";
  const out = {
    contentType: type,
    contentDisposition: res.headers.get("content-disposition"),
    csp: res.headers.get("content-security-policy"),
    size: bytes.length,
  };
  if (type.startsWith("text/")) out.text = bytes.toString("utf8");
  if (type === "image/png") out.png = [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
  return out;
}

/// Ids, tokens, timestamps and the random suffixes of stored file names become stable
/// placeholders; keys are sorted.
function normalise(v, names) {
  const byId = Object.fromEntries(Object.entries(names).map(([k, id]) => [id, `<${k}>`]));
  const walk = (x, key) => {
    if (Array.isArray(x)) return x.map((i) => walk(i, key));
    if (x && typeof x === "object") {
      return Object.fromEntries(Object.keys(x).sort().map((k) => [k, walk(x[k], k)]));
    }
    if (typeof x === "string") {
      if (byId[x]) return byId[x];
      if (key === "token") return "<token>";
      if (/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$/.test(x)) return "<date>";
      if (/^[a-z0-9]{15}$/.test(x)) return "<id>";
      if (/^pbc_\d+$/.test(x) && key !== "collectionId") return "<collection id>";
      return x.replace(/_[a-z0-9]{10}(?=\.[a-z]+(?:"|$))/g, "_<random>");
    }
    return x;
  };
  return walk(v, "");
}

const [pbRun, baRun] = [await run("pocketbase"), await run("basalt")];
const rows = [];
let matched = 0;
for (let i = 0; i < pbRun.results.length; i++) {
  const p = pbRun.results[i];
  const b = baRun.results[i];
  const pn = JSON.stringify(normalise(p.body, pbRun.names));
  const bn = JSON.stringify(normalise(b.body, baRun.names));
  const statusOk = p.status === b.status;
  const bodyOk = pn === bn;
  if (statusOk && bodyOk) matched++;
  rows.push({ name: p.name, pb: p.status, basalt: b.status, status: statusOk ? "=" : "≠", body: bodyOk ? "=" : "≠", pn, bn });
}
const lines = [
  "# Differential check: Basalt vs PocketBase",
  "",
  `Generated by \`node tests/differential/run.mjs\` on ${new Date().toISOString().slice(0, 10)}.`,
  "Each step runs against a fresh PocketBase and a fresh Basalt; bodies are compared after",
  "replacing ids, tokens, timestamps and stored files' random name suffixes with placeholders",
  "and sorting keys; a file download is compared by its content type, disposition and",
  "security policy, its size, and its text or PNG dimensions.",
  "",
  `**${matched}/${rows.length} steps match** (status and body).`,
  "",
  "| step | PocketBase | Basalt | status | body |",
  "|---|---|---|---|---|",
  ...rows.map((r) => `| ${r.name.replace(/\|/g, "\\|")} | ${r.pb} | ${r.basalt} | ${r.status} | ${r.body} |`),
  "",
  "## Differing bodies",
  "",
  ...rows.filter((r) => r.body !== "=").flatMap((r) => [`### ${r.name}`, "", "PocketBase: `" + r.pn.slice(0, 600) + "`", "", "Basalt: `" + r.bn.slice(0, 600) + "`", ""]),
];
writeFileSync(join(import.meta.dirname, "REPORT.md"), lines.join("\n"));
for (const r of rows) console.log(`${r.status}${r.body} ${String(r.pb).padEnd(4)} ${String(r.basalt).padEnd(4)} ${r.name}`);
console.log(`differential: ${matched}/${rows.length} steps match`);
process.exit(strict && matched !== rows.length ? 1 : 0);
