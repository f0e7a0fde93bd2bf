import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { stopLiveDaemon } from "../../src/supervisor/daemon-process";
import { daemonFiles } from "../../src/protocol/paths";
import { REPO, startNodeRed, NR_PKG, type NodeRed } from "../browser/node-red-process";
import { SIDEBAR_FLOW, sidebarFlow } from "../helpers/sidebar-flow";
import { waitFor } from "../helpers/wait-for";

// The sidebar's admin endpoints under Node-RED's own adminAuth, in a real Node-RED process: no
// token, nothing (not even whether a daemon exists); a read-only user sees the overview but may
// not kill; an admin may.

interface Overview {
  daemons: { id: string; name: string; running: { key: string; command: string; killRequested: string | null }[]; recent: { command: string | null; error: string | null; signal: string | null }[] }[];
}

describe(`sidebar endpoints under adminAuth (${NR_PKG})`, function () {
  this.timeout(60_000);

  let userDir = "";
  let runtimeDir = "";
  let red: NodeRed | undefined;
  const tokens = { admin: "", viewer: "" };

  const call = (method: "GET" | "POST", route: string, token = ""): Promise<Response> =>
    fetch(new URL(route, red?.url), { method, headers: token === "" ? {} : { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  const overview = async (token: string): Promise<Overview> => {
    const response = await call("GET", "file-daemon/overview", token);
    const text = await response.text();
    assert.equal(response.status, 200, text);
    return JSON.parse(text) as Overview;
  };
  /** A token for `username` with the scope that user's permissions allow. */
  const login = async (username: string, scope: string): Promise<string> => {
    const body = new URLSearchParams({ client_id: "node-red-admin", grant_type: "password", scope, username, password: `${username}-secret` });
    const response = await fetch(new URL("auth/token", red?.url), { method: "POST", body, signal: AbortSignal.timeout(10_000) });
    const text = await response.text();
    assert.equal(response.status, 200, text);
    return (JSON.parse(text) as { access_token: string }).access_token;
  };

  before(async () => {
    userDir = mkdtempSync(path.join(os.tmpdir(), "file-daemon-sidebar-auth-"));
    runtimeDir = mkdtempSync(path.join(os.tmpdir(), "file-daemon-sidebar-auth-xdg-"));
    writeFileSync(path.join(userDir, "flows.json"), JSON.stringify(sidebarFlow()));
    // Node-RED's own bcrypt, as its docs have users make the hashes (node-red admin hash-pw).
    const bcrypt = createRequire(createRequire(path.join(REPO, "package.json")).resolve(`${NR_PKG}/package.json`))("bcryptjs") as { hashSync(text: string, rounds: number): string };
    const users = [
      { username: "admin", password: bcrypt.hashSync("admin-secret", 8), permissions: "*" },
      { username: "viewer", password: bcrypt.hashSync("viewer-secret", 8), permissions: "read" },
    ];
    const settings = path.join(userDir, "settings.js");
    writeFileSync(settings, `module.exports = { adminAuth: { type: "credentials", users: ${JSON.stringify(users)} } };\n`);
    red = await startNodeRed(userDir, 30_000, process.execPath, { XDG_RUNTIME_DIR: runtimeDir }, settings);
    tokens.admin = await login("admin", "*");
    tokens.viewer = await login("viewer", "read");
  });

  after(async () => {
    await red?.stop();
    const dir = path.join(runtimeDir, "file-daemon");
    await stopLiveDaemon(daemonFiles(path.join(dir, "commands"), path.join(dir, "results")));
    for (const dir of [userDir, runtimeDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses an anonymous request to either endpoint with 401 and says nothing about the daemons", async () => {
    const view = await call("GET", "file-daemon/overview");
    assert.equal(view.status, 401);
    // Passport's own word, nothing of ours.
    assert.equal(await view.text(), "Unauthorized");
    const kill = await call("POST", `file-daemon/kill/${SIDEBAR_FLOW.config}/c1`);
    assert.equal(kill.status, 401);
    // A token that is not one is no better.
    assert.equal((await call("GET", "file-daemon/overview", "not-a-token")).status, 401);
  });

  it("shows a read-only user the overview, refuses that user's Kill (401), and the command goes on", async () => {
    const before = await overview(tokens.viewer);
    assert.deepEqual(before.daemons.map((daemon) => daemon.name), ["pi daemon"]);
    // An admin presses the inject (inject.write); the command runs at the daemon.
    assert.equal((await call("POST", `inject/${SIDEBAR_FLOW.sleepInject}`, tokens.admin)).status, 200);
    const running = await waitFor("sleep 30 listed as running", async () => (await overview(tokens.viewer)).daemons[0]?.running[0]);
    assert.equal(running.command, "sleep 30");
    const refused = await call("POST", `file-daemon/kill/${SIDEBAR_FLOW.config}/${running.key}`, tokens.viewer);
    assert.equal(refused.status, 401);
    assert.equal((await overview(tokens.viewer)).daemons[0]?.running[0]?.killRequested, null, "the refused kill was asked for");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.deepEqual((await overview(tokens.viewer)).daemons[0]?.running.map((command) => command.key), [running.key]);
  });

  it("lets an admin kill it: 200, a second press 409 (or 404 once ended), then the overview lists it as killed by SIGTERM; a kill after the end is 404", async () => {
    const running = (await overview(tokens.admin)).daemons[0]?.running[0];
    assert.ok(running);
    const killed = await call("POST", `file-daemon/kill/${SIDEBAR_FLOW.config}/${running.key}`, tokens.admin);
    assert.equal(killed.status, 200);
    assert.deepEqual(await killed.json(), { killed: running.key, signal: "SIGTERM" });
    // Pressed twice before it ended: the second is refused as such, and says which signal went.
    const twice = await call("POST", `file-daemon/kill/${SIDEBAR_FLOW.config}/${running.key}`, tokens.admin);
    if (twice.status !== 404) {
      assert.equal(twice.status, 409);
      assert.deepEqual(((await twice.json()) as { signal: string }).signal, "SIGTERM");
    }
    const recent = await waitFor("the killed command among the recent results", async () => (await overview(tokens.admin)).daemons[0]?.recent[0]);
    assert.deepEqual({ command: recent.command, error: recent.error, signal: recent.signal }, { command: "sleep 30", error: "KILLED", signal: "SIGTERM" });
    const again = await call("POST", `file-daemon/kill/${SIDEBAR_FLOW.config}/${running.key}`, tokens.admin);
    assert.equal(again.status, 404);
    assert.match(((await again.json()) as { error: string }).error, /ended already/);
    const unknown = await call("POST", "file-daemon/kill/0000000000000000/c1", tokens.admin);
    assert.equal(unknown.status, 404);
  });
});
