// `basalt typegen --lang ts` against the official SDK's types: a sample app using the
// generated types with `pb.collection(name)` (TypedPocketBase) and `RecordService<T>`
// must compile with `tsc --strict`, and misuse (an unknown field, a select value that is
// not listed) must not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startServer, target } from "./helpers.mjs";

const tsc = join(import.meta.dirname, "node_modules", ".bin", "tsc");

function basalt(args) {
  const bin = process.env.BASALT_BIN || join(process.env.CARGO_TARGET_DIR || join(import.meta.dirname, "../../target"), "debug", "basalt");
  return spawnSync(bin, args, { encoding: "utf8", timeout: 60000 });
}

const APP = `
import PocketBase, { RecordService } from "pocketbase";
import type { TypedPocketBase, KindsRecord, KindsCreate, KindsUpdate, AuthorsRecord, AuthorsCreate, PostTitlesRecord } from "./types.js";

const pb = new PocketBase("http://127.0.0.1:1") as TypedPocketBase;

export async function app(): Promise<void> {
  const k = await pb.collection("kinds").getOne("x", { expand: "owner,readers" });
  const title: string = k.title;
  const status: "draft" | "live" | "" = k.status;
  const labels: ("a" | "b" | "c")[] = k.labels;
  const score: number = k.score;
  const done: boolean = k.done;
  const readers: string[] = k.readers;
  const owner: AuthorsRecord | undefined = k.expand?.owner;
  const name: string | undefined = owner?.name;
  const email: string | undefined = owner?.email;
  const many: AuthorsRecord[] | undefined = k.expand?.readers;
  const input: KindsCreate = { title: "hi", status: "live", labels: ["a"], meta: { any: 1 } };
  const created = await pb.collection("kinds").create<KindsRecord>(input);
  const patch: KindsUpdate = { "score+": 2, "labels+": "b" };
  await pb.collection("kinds").update<KindsRecord>(created.id, patch);
  const page = await pb.collection("kinds").getList(1, 20, { filter: "done = true" });
  const first: KindsRecord | undefined = page.items[0];
  const service: RecordService<KindsRecord> = pb.collection("kinds");
  const signup: AuthorsCreate = { email: "a@example.com", password: "p", passwordConfirm: "p" };
  const view: PostTitlesRecord[] = await pb.collection("post_titles").getFullList();
  const auth = await pb.collection("authors").authWithPassword("a@example.com", "p");
  const me: AuthorsRecord = auth.record;
  void [title, status, labels, score, done, readers, name, email, many, first, service, signup, view, me];
}
`;

// Each with the TypeScript error it must cause (a block of its own, so nothing else breaks).
const MISUSE = [
  [`const r = await pb.collection("kinds").getOne("x"); r.nope;`, "TS2339"],
  [`const bad: KindsCreate = { title: "x", status: "gone" }; void bad;`, "TS2322"],
  [`const bad: KindsCreate = { status: "live" }; void bad;`, "TS2741"],
  [`const r = await pb.collection("kinds").getOne("x"); const n: string = r.score; void n;`, "TS2322"],
];

function compile(dir, app) {
  writeFileSync(join(dir, "app.ts"), app);
  return spawnSync(tsc, ["-p", join(dir, "tsconfig.json")], { encoding: "utf8", timeout: 120000 });
}

test("typegen's TypeScript compiles with tsc --strict against the SDK", { skip: target !== "basalt" }, async () => {
  const s = await startServer();
  const dir = mkdtempSync(join(import.meta.dirname, ".typegen-"));
  try {
    const authors = await s.pb.collections.create({
      name: "authors", type: "auth", listRule: "", viewRule: "",
      fields: [{ name: "name", type: "text" }, { name: "notes", type: "text", hidden: true }],
    });
    const kinds = await s.pb.collections.create({
      name: "kinds", type: "base", listRule: "", viewRule: "",
      fields: [
        { name: "title", type: "text", required: true },
        { name: "body", type: "editor" },
        { name: "score", type: "number" },
        { name: "done", type: "bool" },
        { name: "contact", type: "email" },
        { name: "link", type: "url" },
        { name: "due", type: "date" },
        { name: "status", type: "select", values: ["draft", "live"], maxSelect: 1 },
        { name: "labels", type: "select", values: ["a", "b", "c"], maxSelect: 3 },
        { name: "meta", type: "json" },
        { name: "owner", type: "relation", collectionId: "", maxSelect: 1 },
        { name: "readers", type: "relation", collectionId: "", maxSelect: 5 },
        { name: "cover", type: "file", maxSelect: 1 },
        { name: "created", type: "autodate", onCreate: true },
      ].map((f) => (f.type === "relation" ? { ...f, collectionId: authors.id } : f)),
    });
    await s.pb.collections.create({ name: "posts", type: "base", fields: [{ name: "kind", type: "relation", collectionId: kinds.id }, { name: "title", type: "text" }] });
    await s.pb.collections.create({ name: "post_titles", type: "view", listRule: "", viewQuery: "SELECT id, title FROM posts" });

    const refused = basalt(["typegen", "--lang", "go", "--dir", s.dir]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /--lang "go" is not supported; supported: ts/);

    const gen = basalt(["typegen", "--lang", "ts", "--out", join(dir, "types.ts"), "--dir", s.dir]);
    assert.equal(gen.status, 0, gen.stderr);
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: "es2022", module: "nodenext", moduleResolution: "nodenext", types: [] },
      files: ["app.ts"],
    }));
    const ok = compile(dir, APP);
    assert.equal(ok.status, 0, `tsc --strict failed:\n${ok.stdout}${ok.stderr}`);
    for (const [line, code] of MISUSE) {
      const bad = compile(dir, APP.replace("void [", `{ ${line} }\n  void [`));
      assert.notEqual(bad.status, 0, `tsc accepted: ${line}`);
      const errors = bad.stdout.split("\n").filter((l) => l.includes("error TS"));
      assert.equal(errors.length, 1, `${line}:\n${bad.stdout}`);
      assert.match(errors[0], new RegExp(code), `${line}:\n${bad.stdout}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await s.stop();
  }
});
