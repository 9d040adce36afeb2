// Starts a fresh server (Basalt by default, PocketBase with SDK_TARGET=pocketbase) on a
// free loopback port with a temporary data directory, and an SDK client authed as superuser.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import PocketBase from "pocketbase";

export const SU_EMAIL = "test@example.com";
export const SU_PASSWORD = "Test-pass-123";
export const target = process.env.SDK_TARGET === "pocketbase" ? "pocketbase" : "basalt";

function binary(kind) {
  if (kind === "pocketbase") return "pocketbase";
  if (process.env.BASALT_BIN) return process.env.BASALT_BIN;
  const dir = process.env.CARGO_TARGET_DIR || resolve(import.meta.dirname, "../../target");
  const bin = join(dir, "debug", "basalt");
  if (!existsSync(bin)) throw new Error(`no basalt binary at ${bin}: build it or set BASALT_BIN`);
  return bin;
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export async function startServer(kind = target) {
  const bin = binary(kind);
  const dir = mkdtempSync(join(tmpdir(), "basalt-sdk-"));
  const up = spawnSync(bin, ["superuser", "upsert", SU_EMAIL, SU_PASSWORD, "--dir", dir], { stdio: "ignore", timeout: 30000 });
  if (up.status !== 0) throw new Error(`superuser upsert failed (${up.status})`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = ["serve", "--http", `127.0.0.1:${port}`, "--dir", dir];
  // PocketBase would write JS migrations into the working directory and replay them later.
  if (kind === "pocketbase") args.push("--automigrate=false", "--migrationsDir", join(dir, "migrations"));
  // Every suite signs in from 127.0.0.1 far more often than Basalt's default auth limit
  // (60 per address per minute) allows; the limits themselves are tested in
  // crates/basalt/tests/auth_security.rs. Raised, not disabled, so the limiter still runs.
  const env = { ...process.env, BASALT_AUTH_RATE_PER_IP: "100000", BASALT_AUTH_RATE_PER_IDENTITY: "100000" };
  const child = spawn(bin, args, { stdio: "ignore", cwd: dir, env });
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      const r = await fetch(`${url}/api/health`);
      if (r.ok) break;
    } catch {}
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error("server did not become healthy");
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const pb = client(url);
  await pb.collection("_superusers").authWithPassword(SU_EMAIL, SU_PASSWORD);
  return {
    url,
    dir,
    pb,
    client: () => client(url),
    async stop() {
      child.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 50));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function client(url) {
  const pb = new PocketBase(url);
  pb.autoCancellation(false);
  return pb;
}

/// A user in the default `users` collection, and an SDK client authed as them.
export async function newUser(server, email, password = "User-pass-123") {
  const rec = await server.pb.collection("users").create({ email, password, passwordConfirm: password, name: email.split("@")[0] });
  const pb = server.client();
  await pb.collection("users").authWithPassword(email, password);
  return { rec, pb };
}

/// Awaits a promise that must reject with a ClientResponseError; returns it.
export async function rejects(p) {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected the request to fail");
}
