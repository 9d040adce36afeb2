// Cron jobs through the official SDK (pb.crons): the list, a job run on demand, the
// scheduled backup's job appearing with `backups.cron`, and who may do either.
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

test("list and run the maintenance jobs", async () => {
  const jobs = await pb.crons.getFullList();
  const ids = jobs.map((j) => j.id);
  for (const id of ["__pbDBOptimize__", "__pbMFACleanup__", "__pbOTPCleanup__"]) {
    assert.ok(ids.includes(id), `${id} in ${ids}`);
  }
  assert.equal(jobs.find((j) => j.id === "__pbOTPCleanup__").expression, "0 * * * *");
  assert.equal(jobs.find((j) => j.id === "__pbDBOptimize__").expression, "0 0 * * *");
  assert.ok(!ids.includes("__pbAutoBackup__"), "no backup job while backups.cron is empty");
  assert.equal(await pb.crons.run("__pbOTPCleanup__"), true);
  assert.equal(await pb.crons.run("__pbDBOptimize__"), true);
  const missing = await rejects(pb.crons.run("no_such_job"));
  assert.equal(missing.status, 404);
  assert.equal(missing.response.message, "Missing or invalid cron job.");
});

test("the scheduled backup is a job while backups.cron is set", async () => {
  await pb.settings.update({ backups: { cron: "0 3 * * *", cronMaxKeep: 2 } });
  const jobs = await pb.crons.getFullList();
  const backup = jobs.find((j) => j.id === "__pbAutoBackup__");
  assert.equal(backup?.expression, "0 3 * * *");
  await pb.settings.update({ backups: { cron: "" } });
  const after = await pb.crons.getFullList();
  assert.ok(!after.some((j) => j.id === "__pbAutoBackup__"));
});

test("only superusers see and run jobs", async () => {
  const anon = s.client();
  assert.equal((await rejects(anon.crons.getFullList())).status, 401);
  assert.equal((await rejects(anon.crons.run("__pbOTPCleanup__"))).status, 401);
  const { pb: user } = await newUser(s, "cron-user@example.com");
  assert.equal((await rejects(user.crons.getFullList())).status, 403);
  assert.equal((await rejects(user.crons.run("__pbOTPCleanup__"))).status, 403);
});
