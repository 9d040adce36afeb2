// Every SDK auth method Basalt implements, driven by the official SDK, with mails caught
// by a real SMTP server (tests/smtp_sink.py, PyPI aiosmtpd) and their links and codes followed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, newUser, rejects, target } from "./helpers.mjs";

const APP_URL = "https://app.example.test";
const PASSWORD = "User-pass-123";
let s;
let sink;

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

async function startSink() {
  const dir = mkdtempSync(join(tmpdir(), "basalt-smtp-"));
  const port = await freePort();
  const script = join(import.meta.dirname, "..", "smtp_sink.py");
  const child = spawn("python3", [script, "--port", String(port), "--dir", dir, "--lifetime", "300"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error("SMTP sink did not start (pip install aiosmtpd)")), 20000);
    child.stdout.once("data", () => {
      clearTimeout(timer);
      res();
    });
    child.once("exit", () => rej(new Error("SMTP sink exited (pip install aiosmtpd)")));
  });
  const messages = () =>
    readdirSync(dir)
      .filter((f) => f.endsWith(".json"))
      .sort()
      .map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")));
  return {
    port,
    // Waits (at most 15 s) for a mail to `to` beyond the `seen` first ones.
    async next(to, seen = 0) {
      const deadline = Date.now() + 15000;
      for (;;) {
        const mine = messages().filter((m) => m.to.includes(to));
        if (mine.length > seen) return mine[seen];
        if (Date.now() > deadline) throw new Error(`no mail to ${to}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop() {
      child.stdin.end();
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function linkToken(mail, action) {
  const prefix = `${APP_URL}/_/#/auth/${action}/`;
  const i = mail.html.indexOf(prefix);
  assert.ok(i >= 0, `no ${action} link in ${mail.html}`);
  return mail.html.slice(i + prefix.length).split('"')[0];
}

const otpCode = (mail) => /<strong>(\d+)<\/strong>/.exec(mail.html)[1];

before(async () => {
  sink = await startSink();
  s = await startServer();
  await s.pb.settings.update({
    meta: { appName: "Acme", appURL: APP_URL, senderName: "Acme", senderAddress: "no-reply@example.test" },
    smtp: { enabled: true, host: "127.0.0.1", port: sink.port },
  });
});

after(async () => {
  if (s) await s.stop();
  if (sink) sink.stop();
});

test("authWithPassword, authRefresh and listAuthMethods", async () => {
  const { rec, pb } = await newUser(s, "ann@example.com", PASSWORD);
  assert.equal(pb.authStore.record.id, rec.id);
  assert.ok(pb.authStore.isValid);
  const first = pb.authStore.token;
  const refreshed = await pb.collection("users").authRefresh();
  assert.equal(refreshed.record.email, "ann@example.com");
  assert.ok(refreshed.token);
  assert.notEqual(first, "");
  assert.equal((await rejects(s.client().collection("users").authWithPassword("ann@example.com", "wrong-pass-1"))).status, 400);
  const fileToken = await pb.files.getToken();
  assert.equal(JSON.parse(Buffer.from(fileToken.split(".")[1], "base64url")).type, "file");
  const methods = await s.client().collection("users").listAuthMethods();
  assert.deepEqual(methods.password, { enabled: true, identityFields: ["email"] });
  assert.equal(methods.otp.enabled, false);
  assert.equal(methods.mfa.enabled, false);
});

test("requestVerification and confirmVerification follow the mailed link once", async () => {
  const { rec } = await newUser(s, "ver@example.com", PASSWORD);
  const anon = s.client();
  assert.equal(await anon.collection("users").requestVerification("ver@example.com"), true);
  assert.equal(await anon.collection("users").requestVerification("ghost@example.com"), true);
  const mail = await sink.next("ver@example.com");
  const token = linkToken(mail, "confirm-verification");
  assert.equal(await anon.collection("users").confirmVerification(token), true);
  assert.equal((await s.pb.collection("users").getOne(rec.id)).verified, true);
  if (target === "basalt") {
    // Basalt refuses a used verification token; PocketBase answers it as a no-op.
    assert.equal((await rejects(anon.collection("users").confirmVerification(token))).status, 400);
  }
});

test("requestPasswordReset and confirmPasswordReset change the password once", async () => {
  await newUser(s, "reset@example.com", PASSWORD);
  const anon = s.client();
  assert.equal(await anon.collection("users").requestPasswordReset("reset@example.com"), true);
  const token = linkToken(await sink.next("reset@example.com"), "confirm-password-reset");
  assert.equal(await anon.collection("users").confirmPasswordReset(token, "New-pass-456", "New-pass-456"), true);
  assert.equal((await rejects(anon.collection("users").authWithPassword("reset@example.com", PASSWORD))).status, 400);
  await anon.collection("users").authWithPassword("reset@example.com", "New-pass-456");
  const replay = await rejects(s.client().collection("users").confirmPasswordReset(token, "Other-pass-789", "Other-pass-789"));
  assert.equal(replay.status, 400);
});

test("requestEmailChange and confirmEmailChange move the account to the new address", async () => {
  const { pb } = await newUser(s, "move@example.com", PASSWORD);
  assert.equal(await pb.collection("users").requestEmailChange("moved@example.com"), true);
  const token = linkToken(await sink.next("moved@example.com"), "confirm-email-change");
  assert.equal((await rejects(s.client().collection("users").confirmEmailChange(token, "wrong-pass-1"))).status, 400);
  assert.equal(await s.client().collection("users").confirmEmailChange(token, PASSWORD), true);
  const again = s.client();
  const auth = await again.collection("users").authWithPassword("moved@example.com", PASSWORD);
  assert.equal(auth.record.email, "moved@example.com");
  assert.equal((await rejects(s.client().collection("users").confirmEmailChange(token, PASSWORD))).status, 400);
});

test("requestOTP, authWithOTP and the MFA flow", async () => {
  await s.pb.collections.update("users", { otp: { enabled: true, duration: 180, length: 6 } });
  const { rec } = await newUser(s, "otp@example.com", PASSWORD);
  const anon = s.client();
  const methods = await anon.collection("users").listAuthMethods();
  assert.equal(methods.otp.enabled, true);
  assert.equal(methods.otp.duration, 180);
  const { otpId } = await anon.collection("users").requestOTP("otp@example.com");
  const code = otpCode(await sink.next("otp@example.com"));
  assert.equal(code.length, 6);
  const auth = await anon.collection("users").authWithOTP(otpId, code);
  assert.equal(auth.record.id, rec.id);
  assert.ok(anon.authStore.isValid);
  assert.equal((await rejects(s.client().collection("users").authWithOTP(otpId, code))).status, 400);
  const ghost = await s.client().collection("users").requestOTP("ghost@example.com");
  assert.ok(ghost.otpId);

  // The OTP proved an unverified address: the password set before stops working
  // (an account pre-registered with someone else's email cannot be kept).
  assert.equal((await rejects(s.client().collection("users").authWithPassword("otp@example.com", PASSWORD))).status, 400);
  await s.pb.collection("users").update(rec.id, { password: PASSWORD, passwordConfirm: PASSWORD });

  await s.pb.collections.update("users", { mfa: { enabled: true, duration: 600, rule: "" } });
  assert.equal((await s.client().collection("users").listAuthMethods()).mfa.enabled, true);
  const second = s.client();
  const challenge = await rejects(second.collection("users").authWithPassword("otp@example.com", PASSWORD));
  assert.equal(challenge.status, 401);
  const mfaId = challenge.response.mfaId;
  assert.ok(mfaId);
  const otp2 = await second.collection("users").requestOTP("otp@example.com");
  const code2 = otpCode(await sink.next("otp@example.com", 1));
  const done = await second.collection("users").authWithOTP(otp2.otpId, code2, { mfaId });
  assert.equal(done.record.id, rec.id);
  assert.ok(second.authStore.isValid);
  await s.pb.collections.update("users", { mfa: { enabled: false, duration: 600, rule: "" } });
});

test("impersonate gives a superuser a session of any user", async () => {
  const { rec } = await newUser(s, "imp@example.com", PASSWORD);
  const as = await s.pb.collection("users").impersonate(rec.id, 3600);
  assert.equal(as.authStore.record.id, rec.id);
  assert.equal((await as.collection("users").getOne(rec.id)).email, "imp@example.com");
  const token = as.authStore.token;
  // Not refreshable: a refresh hands the same token back (its lifetime never grows).
  assert.equal((await as.collection("users").authRefresh()).token, token);
  const user = await newUser(s, "not-admin@example.com", PASSWORD);
  assert.equal((await rejects(user.pb.collection("users").impersonate(rec.id, 60))).status, 403);
});
