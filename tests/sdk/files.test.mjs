// Files through the official SDK: uploads (File and Blob values, `field+` / `field-`),
// pb.files.getURL with and without thumbs, file tokens for protected files, the avatar.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, newUser } from "./helpers.mjs";

// A 40x30 PNG.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAACgAAAAeCAIAAADRv8uKAAAAKUlEQVR4nO3NoQ0AAAwCMP5/ensBh2lS31wysVnFYrFYLBaLxWKxWFx5Pp2rjeB5c/4AAAAASUVORK5CYII=",
  "base64",
);

let s;
let pb;

before(async () => {
  s = await startServer();
  pb = s.pb;
  await pb.collections.create({
    name: "albums",
    listRule: "",
    viewRule: "",
    createRule: "",
    updateRule: "",
    fields: [
      { name: "title", type: "text" },
      { name: "cover", type: "file", maxSelect: 1, thumbs: ["20x20"] },
      { name: "attachments", type: "file", maxSelect: 3 },
      { name: "secret", type: "file", maxSelect: 1, protected: true },
    ],
  });
});

after(async () => {
  await s?.stop();
});

test("uploads, getURL, thumbs and modifiers", async () => {
  const rec = await pb.collection("albums").create({
    title: "a",
    cover: new File([PNG], "Cover Photo.png"),
    attachments: [new File(["one"], "one.txt"), new Blob(["two"])],
  });
  assert.match(rec.cover, /^cover_photo_[a-z0-9]{10}\.png$/);
  assert.equal(rec.attachments.length, 2);

  const res = await fetch(pb.files.getURL(rec, rec.cover));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "image/png");
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), PNG);
  const thumb = await fetch(pb.files.getURL(rec, rec.cover, { thumb: "20x20" }));
  assert.equal(thumb.status, 200);
  const t = Buffer.from(await thumb.arrayBuffer());
  assert.equal(t.readUInt32BE(16), 20);
  assert.equal(t.readUInt32BE(20), 20);
  const dl = await fetch(pb.files.getURL(rec, rec.cover, { download: true }));
  assert.match(dl.headers.get("content-disposition"), /^attachment/);

  const more = await pb.collection("albums").update(rec.id, { "attachments+": new File(["three"], "three.txt") });
  assert.equal(more.attachments.length, 3);
  assert.deepEqual(more.attachments.slice(0, 2), rec.attachments);
  const fewer = await pb.collection("albums").update(rec.id, { "attachments-": [rec.attachments[0]] });
  assert.deepEqual(fewer.attachments, more.attachments.slice(1));
  assert.equal((await fetch(pb.files.getURL(rec, rec.attachments[0]))).status, 404);
  const cleared = await pb.collection("albums").update(rec.id, { cover: null });
  assert.equal(cleared.cover, "");
});

test("protected files need a file token once the view rule needs auth", async () => {
  const rec = await pb.collection("albums").create({ secret: new File(["hush"], "s.txt") });
  await pb.collections.update("albums", { viewRule: "@request.auth.id != ''" });
  try {
    assert.equal((await fetch(pb.files.getURL(rec, rec.secret))).status, 404);
    const token = await pb.files.getToken();
    const res = await fetch(pb.files.getURL(rec, rec.secret, { token }));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "hush");
  } finally {
    await pb.collections.update("albums", { viewRule: "" });
  }
});

test("a user's avatar", async () => {
  const { rec, pb: userPb } = await newUser(s, "avatar@example.com");
  const updated = await userPb.collection("users").update(rec.id, { avatar: new File([PNG], "me.png") });
  assert.match(updated.avatar, /^me[a-z0-9]*_[a-z0-9]{10}\.png$/);
  const res = await fetch(userPb.files.getURL(updated, updated.avatar));
  assert.equal(res.status, 200);
});

test("files in a batch", async () => {
  await pb.settings.update({ batch: { enabled: true } });
  const first = await pb.collection("albums").create({ title: "batched" });
  const batch = pb.createBatch();
  batch.collection("albums").create({ title: "b1", cover: new File([PNG], "b.png") });
  batch.collection("albums").update(first.id, { "attachments+": new File(["x"], "x.txt") });
  const out = await batch.send();
  assert.equal(out.length, 2);
  assert.equal(out[0].status, 200);
  // PocketBase names batch files after an intermediate random name; Basalt after the
  // client's, as in a single create: both are a safe name with the detected extension.
  assert.match(out[0].body.cover, /^b[a-z0-9_]*\.png$/);
  assert.equal(out[1].body.attachments.length, 1);
  const res = await fetch(pb.files.getURL(out[0].body, out[0].body.cover));
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), PNG);
});
