// Backups through the official SDK (pb.backups): create, list, download with a file
// token, upload, delete and restore (the server restarts itself and comes back with the
// backup's data).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, client, SU_EMAIL, SU_PASSWORD } from "./helpers.mjs";

let s;
let pb;

before(async () => {
  s = await startServer();
  pb = s.pb;
});

after(async () => {
  await s?.stop();
});

async function status(p) {
  try {
    await p;
    return 200;
  } catch (e) {
    return e.status;
  }
}

test("create, list, download, upload and delete", async () => {
  assert.equal(await pb.backups.create("sdk_one.zip"), true);
  const err = await pb.backups.create("Bad Name.zip").catch((e) => e);
  assert.equal(err.status, 400);
  assert.equal(err.response.data.name.code, "validation_match_invalid");
  const dup = await pb.backups.create("sdk_one.zip").catch((e) => e);
  assert.equal(dup.response.data.name.code, "validation_backup_name_exists");

  const list = await pb.backups.getFullList();
  const one = list.find((b) => b.key === "sdk_one.zip");
  assert.ok(one, JSON.stringify(list));
  assert.ok(one.size > 0);
  assert.match(one.modified, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$/);

  const token = await pb.files.getToken();
  const res = await fetch(pb.backups.getDownloadURL(token, "sdk_one.zip"));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/zip");
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.equal(String.fromCharCode(bytes[0], bytes[1]), "PK");
  assert.equal((await fetch(pb.backups.getDownloadURL("", "sdk_one.zip"))).status, 403);

  const anon = client(s.url);
  assert.equal(await status(anon.backups.getFullList()), 401);

  assert.equal(await pb.backups.upload({ file: new File([bytes], "sdk_up.zip", { type: "application/zip" }) }), true);
  const notZip = await pb.backups
    .upload({ file: new File(["hello"], "text.zip", { type: "application/zip" }) })
    .catch((e) => e);
  assert.equal(notZip.status, 400);
  assert.equal(notZip.response.data.file.code, "validation_invalid_mime_type");
  const keys = (await pb.backups.getFullList()).map((b) => b.key);
  assert.ok(keys.includes("sdk_up.zip"), keys.join());

  assert.equal(await pb.backups.delete("sdk_up.zip"), true);
  assert.ok(!(await pb.backups.getFullList()).some((b) => b.key === "sdk_up.zip"));
  assert.equal(await status(pb.backups.delete("sdk_up.zip")), 400);
  assert.equal(await status(pb.backups.restore("missing.zip")), 400);
});

test("restore brings the backup's data back", async () => {
  await pb.collections.create({ name: "kept", type: "base", listRule: "", fields: [{ name: "t", type: "text" }] });
  await pb.collection("kept").create({ t: "in the backup" });
  assert.equal(await pb.backups.create("sdk_restore.zip"), true);
  await pb.collections.create({ name: "dropped", type: "base", fields: [] });
  await pb.collection("kept").create({ t: "after the backup" });

  assert.equal(await pb.backups.restore("sdk_restore.zip"), true);
  // The server restarts itself; wait (bounded) for it to serve the restored data.
  const deadline = Date.now() + 60000;
  let items = null;
  for (;;) {
    try {
      const c = client(s.url);
      await c.collection("_superusers").authWithPassword(SU_EMAIL, SU_PASSWORD);
      const names = (await c.collections.getFullList()).map((x) => x.name);
      if (!names.includes("dropped")) {
        items = await c.collection("kept").getFullList();
        pb = c;
        break;
      }
    } catch {}
    if (Date.now() > deadline) throw new Error("the restore did not complete");
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(
    items.map((r) => r.t),
    ["in the backup"],
  );
  assert.ok((await pb.backups.getFullList()).some((b) => b.key === "sdk_restore.zip"));
});
