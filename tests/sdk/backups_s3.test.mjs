// Backups on S3 through the official SDK: with the settings' `backups.s3` section on a
// real moto_server (PyPI `moto[server]`, started here on 127.0.0.1), pb.backups creates,
// lists, downloads, uploads and deletes objects at the bucket's root, and
// pb.settings.testS3("backups") checks that bucket. Skipped when moto_server is missing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { startServer, freePort } from "./helpers.mjs";

const BUCKET = "sdk-backups";
const haveMoto = spawnSync("moto_server", ["--help"], { stdio: "ignore" }).status === 0;
let s;
let moto;
let endpoint;

async function keys() {
  const xml = await (await fetch(`${endpoint}/${BUCKET}?list-type=2`)).text();
  return [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]).sort();
}

before(async () => {
  if (!haveMoto) return;
  const port = await freePort();
  endpoint = `http://127.0.0.1:${port}`;
  moto = spawn("moto_server", ["-H", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      if ((await fetch(`${endpoint}/${BUCKET}`, { method: "PUT" })).ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error("moto_server did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  s = await startServer();
});

after(async () => {
  await s?.stop();
  moto?.kill("SIGKILL");
});

test("backups on S3: create, list, download, upload, delete", { skip: !haveMoto && "moto_server is not installed" }, async () => {
  const pb = s.pb;
  const missing = await pb.settings.update({ backups: { s3: { enabled: true } } }).catch((e) => e);
  assert.equal(missing.status, 400);
  assert.equal(missing.response.data.backups.s3.bucket.code, "validation_required");
  const saved = await pb.settings.update({
    backups: {
      s3: { enabled: true, bucket: BUCKET, region: "us-east-1", endpoint, accessKey: "test", secret: "test", forcePathStyle: true },
    },
  });
  assert.equal(saved.backups.s3.enabled, true);
  assert.equal(saved.backups.s3.secret, undefined);
  assert.equal(await pb.settings.testS3("backups"), true);
  assert.deepEqual(await keys(), []);

  assert.equal(await pb.backups.create("sdk_s3.zip"), true);
  assert.deepEqual(await keys(), ["sdk_s3.zip"]);
  const list = await pb.backups.getFullList();
  assert.deepEqual(list.map((b) => b.key), ["sdk_s3.zip"]);
  assert.ok(list[0].size > 0);

  const token = await pb.files.getToken();
  const res = await fetch(pb.backups.getDownloadURL(token, "sdk_s3.zip"));
  assert.equal(res.status, 200);
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.equal(bytes.length, list[0].size);
  assert.equal(String.fromCharCode(bytes[0], bytes[1]), "PK");

  assert.equal(await pb.backups.upload({ file: new File([bytes], "sdk_up.zip", { type: "application/zip" }) }), true);
  assert.deepEqual(await keys(), ["sdk_s3.zip", "sdk_up.zip"]);
  assert.equal(await pb.backups.delete("sdk_up.zip"), true);
  assert.deepEqual(await keys(), ["sdk_s3.zip"]);
});
