// A privileged daemon without sudo (systemd/file-daemon-root.service): a real daemon running as
// root with --allow and --file-mode 0660 in a directory root:<group> 2770, and submitters that are
// unprivileged users of that group (the JS CLI, Python, and a hand-written commands file). The
// daemon runs what its allow file allows, exactly once, and refuses the rest whoever wrote it.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { writeFileAtomicSync } from "../../src/protocol/io/atomic-write";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { daemonFiles } from "../../src/protocol/paths";
import { decodeResults, type DoneRecord } from "../../src/protocol/result-record";
import { IS_ROOT, NOBODY, REPO, readOrEmpty, runCli, startDaemon, stopDaemon, waitFor, type CliProcess } from "./support";

/** The group shared by the daemon's directory and the submitters (nobody's own group, nogroup). */
const GROUP = NOBODY;
/** A second unprivileged user of that group (needs no passwd entry: processes are spawned with ids). */
const OTHER = 65533;

const PYTHON = spawnSync("python3", ["--version"]).status === 0 ? "python3" : null;

interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs argv as `uid` (group GROUP) with umask 077, so a file mode that is not chmod'ed shows. */
function runAs(uid: number, argv: string[], cwd = "/"): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn("sh", ["-c", 'umask 077; exec "$@"', "sh", ...argv], { uid, gid: GROUP, cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function mode(file: string): number {
  return statSync(file).mode & 0o7777;
}

/**
 * What an unprivileged submitter needs, copied where it can read it: the checkout may live under
 * a directory it cannot traverse (/root). The JS CLI needs bin/, dist/src, package.json and the
 * four packages the submit path loads; the node binary is copied only if that user cannot run it.
 */
function copyClients(into: string): { node: string; cli: string; python: string } {
  const js = path.join(into, "js");
  mkdirSync(path.join(js, "dist"), { recursive: true });
  cpSync(path.join(REPO, "bin"), path.join(js, "bin"), { recursive: true });
  cpSync(path.join(REPO, "dist", "src"), path.join(js, "dist", "src"), { recursive: true });
  copyFileSync(path.join(REPO, "package.json"), path.join(js, "package.json"));
  const lockfile = path.dirname(require.resolve("proper-lockfile/package.json", { paths: [REPO] }));
  for (const [name, from] of [["proper-lockfile", REPO], ["graceful-fs", lockfile], ["retry", lockfile], ["signal-exit", lockfile]] as const) {
    const dir = path.dirname(require.resolve(`${name}/package.json`, { paths: [from] }));
    cpSync(dir, path.join(js, "node_modules", name), { recursive: true, dereference: true });
  }
  const python = path.join(into, "file_daemon.py");
  copyFileSync(path.join(REPO, "python", "file_daemon.py"), python);
  let node = process.execPath;
  if (spawnSync(node, ["-e", "0"], { uid: NOBODY, gid: GROUP }).status !== 0) {
    node = path.join(into, "node");
    copyFileSync(process.execPath, node);
  }
  spawnSync("chmod", ["-R", "a+rX", into]);
  return { node, cli: path.join(js, "bin", "file-daemon.js"), python };
}

describe("hardening: a privileged daemon (root, --allow, --file-mode 0660) and unprivileged submitters of its group", function () {
  this.timeout(60_000);
  let base = "";
  let clients: ReturnType<typeof copyClients>;
  before(function () {
    if (!IS_ROOT) {
      this.skip(); // needs root: the daemon runs as root and the submitters as uid 65534 and 65533
    }
    base = mkdtempSync(path.join(os.tmpdir(), "file-daemon-priv-"));
    chmodSync(base, 0o755);
    clients = copyClients(path.join(base, "clients"));
  });
  after(() => {
    if (base !== "") rmSync(base, { recursive: true, force: true });
  });

  let daemon: CliProcess | undefined;
  let dir = "";
  let commands = "";
  let results = "";
  let allow = "";
  let marks = "";
  let mark = "";
  beforeEach(async function () {
    if (!IS_ROOT) this.skip();
    const root = mkdtempSync(path.join(base, "case-"));
    chmodSync(root, 0o755);
    // /run/file-daemon as systemd makes it: root:file-daemon 2770.
    dir = path.join(root, "run");
    mkdirSync(dir);
    chownSync(dir, 0, GROUP);
    chmodSync(dir, 0o2770);
    commands = path.join(dir, "commands");
    results = path.join(dir, "results");
    // Every real run of `mark NAME` appends one line to marks/NAME (only root can write there).
    marks = path.join(root, "marks");
    mkdirSync(marks, { mode: 0o755 });
    mark = path.join(root, "mark");
    writeFileSync(mark, `#!/bin/sh\necho run >> ${marks}/"$1"\necho "ran $1"\n`, { mode: 0o755 });
    const etc = path.join(root, "etc");
    mkdirSync(etc, { mode: 0o755 });
    allow = path.join(etc, "allow");
    writeFileSync(allow, `# what unprivileged submitters may have root run\n${mark} ok-*\n`, { mode: 0o644 });
    daemon = await startDaemon(commands, results, 0.1, ["--allow", allow, "--file-mode", "0660"]);
  });
  afterEach(async () => {
    await stopDaemon(daemon);
    daemon = undefined;
  });

  function runs(name: string): number {
    return readOrEmpty(path.join(marks, name)).split("\n").filter((line) => line === "run").length;
  }

  const refusedFor = (command: string) => new RegExp(`not allowed by ${allow.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: no pattern there matches ${JSON.stringify(command).replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}`);

  it("publishes the policy and the file mode in COMMANDS.daemon (0644, readable by the group)", () => {
    const info = readLiveDaemon(daemonFiles(commands, results));
    assert.ok(info !== null);
    assert.equal(info.allow, allow);
    assert.equal(info.fileMode, 0o660);
    assert.match(readFileSync(`${commands}.daemon`, "utf8"), /"fileMode":"0660"/);
    assert.equal(mode(`${commands}.daemon`), 0o644);
  });

  it("the JS CLI as nobody: an allowed command runs once as root; one outside the allow file is refused naming the rule, and does not run", async () => {
    const ok = await runAs(NOBODY, [clients.node, clients.cli, "submit", "-c", commands, "-r", results, "-s", "0.1", "--", mark, "ok-js"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(runs("ok-js"), 1);
    // The submitter emptied the results file when it collected: its own file, 0660 whatever its umask.
    assert.equal(statSync(results).uid, NOBODY);
    assert.equal(mode(results), 0o660);
    const no = await runAs(NOBODY, [clients.node, clients.cli, "submit", "-c", commands, "-r", results, "-s", "0.1", "--", mark, "no-js"]);
    assert.equal(no.code, 125, no.stderr);
    assert.match(no.stderr, refusedFor(`${mark} no-js`));
    assert.match(no.stderr, /the command was not run \[BAD_COMMAND\]/);
    assert.equal(existsSync(path.join(marks, "no-js")), false);
    assert.match(daemon?.output() ?? "", /refused .*not allowed by/);
  });

  it("an allowed command with its own env or cwd is refused by the daemon (PATH or a directory could change what it runs); one followed as nobody streams", async () => {
    for (const extra of [["--env", "PATH=/tmp"], ["--cwd", "/tmp"]]) {
      const run = await runAs(NOBODY, [clients.node, clients.cli, "submit", "-c", commands, "-r", results, "-s", "0.1", ...extra, "--", mark, "ok-env"]);
      assert.equal(run.code, 125, run.stderr);
      assert.match(run.stderr, /not allowed by .*: a daemon with an allow file runs no command (with its own environment|in a directory of the sender's choosing)/);
    }
    assert.equal(existsSync(path.join(marks, "ok-env")), false);
    // The stream file is root's, 0660, in the group's directory: the follower (nobody) reads it and writes its mark.
    const followed = await runAs(NOBODY, [clients.node, clients.cli, "submit", "-c", commands, "-r", results, "-s", "0.1", "--follow", "--", mark, "ok-follow"]);
    assert.equal(followed.code, 0, followed.stderr);
    assert.equal(followed.stdout, "ran ok-follow\n");
    assert.equal(runs("ok-follow"), 1);
  });

  it("Python as nobody: the same (its commands file is nobody's, 0660, and the root daemon takes it)", async function () {
    if (PYTHON === null) this.skip(); // no python3 on this machine
    const ok = await runAs(NOBODY, [PYTHON, clients.python, commands, results, "0.1", "--", mark, "ok-py"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(runs("ok-py"), 1);
    assert.equal(statSync(results).uid, NOBODY);
    assert.equal(mode(results), 0o660);
    const no = await runAs(NOBODY, [PYTHON, clients.python, commands, results, "0.1", "--", "rm", "-rf", marks]);
    assert.equal(no.code, 125, no.stderr);
    assert.match(no.stderr, refusedFor(`rm -rf ${marks}`));
    assert.ok(existsSync(marks));
  });

  /** As nobody, by hand: both locks (mkdir), the content written 0660 and renamed over the commands file. */
  async function writeByHand(content: string): Promise<void> {
    const script = [
      "set -e",
      'until mkdir "$1.lock" 2>/dev/null; do sleep 0.01; done',
      'until mkdir "$2.lock" 2>/dev/null; do sleep 0.01; done',
      'printf "%s" "$3" > "$1.hand.tmp"',
      'chmod 0660 "$1.hand.tmp"',
      'mv "$1.hand.tmp" "$1"',
      'rmdir "$2.lock" "$1.lock"',
    ].join("\n");
    const written = await runAs(NOBODY, ["sh", "-c", script, "sh", commands, results, content]);
    assert.equal(written.code, 0, written.stderr);
  }

  async function resultOf(what: string): Promise<{ line1: string; done: DoneRecord }> {
    const found: { done?: DoneRecord } = {};
    await waitFor(`the daemon's result for ${what}`, () => {
      const decoded = decodeResults(readFileSync(results));
      if (decoded.kind === "done") found.done = decoded;
      return found.done !== undefined;
    }, 15_000);
    const { done } = found;
    if (done === undefined) throw new Error(`no result for ${what}`);
    const line1 = readFileSync(results, "utf8").split("\n")[0] ?? "";
    // Nobody collects a hand-written command's result: clear it as a collector would (0660, the group's).
    writeFileAtomicSync(results, "", 0o660);
    return { line1, done };
  }

  it("a commands file written by hand as nobody, with a valid line 2 or seed-style: allowed ones run once, others are refused naming the rule", async () => {
    await writeByHand(`${mark} no-hand\n${JSON.stringify({ v: 1, id: "by-hand-1" })}\n`);
    const refused = await resultOf("by-hand-1");
    assert.equal(refused.done.id, "by-hand-1");
    assert.equal(refused.done.status, "refused");
    assert.equal(refused.line1, "-1");
    assert.match(refused.done.message ?? "", refusedFor(`${mark} no-hand`));

    await writeByHand(`touch ${marks}/seed-style\n`);
    const seed = await resultOf("a seed-style command");
    assert.match(seed.done.id, /^legacy-/);
    assert.equal(seed.done.status, "refused");
    assert.equal(seed.line1, "-1");
    assert.match(seed.done.message ?? "", refusedFor(`touch ${marks}/seed-style`));

    await writeByHand(`${mark} ok-hand\n${JSON.stringify({ v: 1, id: "by-hand-2" })}\n`);
    assert.equal((await resultOf("by-hand-2")).done.status, "exited");
    await writeByHand(`${mark} ok-seed\n`);
    const allowedSeed = await resultOf("an allowed seed-style command");
    assert.equal(allowedSeed.line1, "0");
    assert.equal(runs("ok-hand"), 1);
    assert.equal(runs("ok-seed"), 1);
    for (const name of ["no-hand", "seed-style"]) assert.equal(existsSync(path.join(marks, name)), false, name);
  });

  it("a stale lock directory (0700) left by one unprivileged user is taken over by another of the group", async () => {
    // The daemon's first pass may hold the lock for a moment: take it once it is free.
    const left = await runAs(NOBODY, ["sh", "-c", 'until mkdir "$1" 2>/dev/null; do sleep 0.01; done', "sh", `${commands}.lock`]);
    assert.equal(left.code, 0, left.stderr);
    // 0700 (with the setgid bit a directory inherits from its 2770 parent): removing it needs only write permission on that parent.
    assert.equal(mode(`${commands}.lock`) & 0o777, 0o700);
    const old = new Date(Date.now() - 60_000);
    utimesSync(`${commands}.lock`, old, old);
    const ok = await runAs(OTHER, [clients.node, clients.cli, "submit", "-c", commands, "-r", results, "-s", "0.1", "--", mark, "ok-other"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(runs("ok-other"), 1);
    assert.equal(statSync(results).uid, OTHER);
  });

  it("SIGHUP rereads the allow file; a bad new one keeps the policy in force and the log says why", async () => {
    writeFileSync(allow, `${mark} ok-*\n${mark} later-*\n`);
    daemon?.child.kill("SIGHUP");
    await waitFor("the reread", () => /reread: only commands allowed by .* \(2 pattern\(s\)\)/.test(daemon?.output() ?? ""), 10_000);
    const later = await runAs(NOBODY, [clients.node, clients.cli, "submit", "-c", commands, "-r", results, "-s", "0.1", "--", mark, "later-1"]);
    assert.equal(later.code, 0, later.stderr);
    writeFileSync(allow, `${mark} *\n`);
    chmodSync(allow, 0o666);
    daemon?.child.kill("SIGHUP");
    await waitFor("the refusal of the new file", () => /writable by every user \(mode 0666\).*run: chmod go-w .*; the allow file read before stays in force/.test(daemon?.output() ?? ""), 10_000);
    const still = await runAs(NOBODY, [clients.node, clients.cli, "submit", "-c", commands, "-r", results, "-s", "0.1", "--", mark, "other-1"]);
    assert.equal(still.code, 125, still.stderr);
    assert.equal(existsSync(path.join(marks, "other-1")), false);
    assert.equal(runs("later-1"), 1);
  });
});

describe("hardening: an allow file that others could change, or that is broken, keeps the daemon from starting", function () {
  this.timeout(30_000);
  let dir = "";
  beforeEach(function () {
    if (!IS_ROOT) this.skip(); // needs root: files of another user (uid 65534)
    dir = mkdtempSync(path.join(os.tmpdir(), "file-daemon-allow-"));
  });
  afterEach(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  const ROWS: readonly [what: string, make: (allow: string) => void, code: number, message: RegExp][] = [
    ["writable by everyone", (allow) => chmodSync(allow, 0o666), 1, /writable by every user \(mode 0666\), who could change what the daemon runs; run: chmod go-w \S+allow \[UNSAFE_FILES\]/],
    ["writable by its group", (allow) => chmodSync(allow, 0o664), 1, /writable by its group \(mode 0664\).*run: chmod go-w /],
    ["owned by another user", (allow) => chownSync(allow, NOBODY, NOBODY), 1, /belongs to uid 65534, who could change what the daemon runs; run: chown root /],
    ["in a directory others can write", (allow) => chmodSync(path.dirname(allow), 0o777), 1, /its directory \S+ is writable by every user \(mode 0777\), who could replace the file; run: chmod go-w /],
    ["holding an invalid pattern", (allow) => writeFileSync(allow, "echo ok\n\necho ***\n"), 2, /--allow \S+allow line 3 "echo \*\*\*": \*\*\* means nothing.* \[BAD_OPTION\]/],
    ["missing", (allow) => rmSync(allow), 2, /--allow \S+allow cannot be read \(ENOENT\).* \[BAD_OPTION\]/],
  ];
  for (const [what, make, code, message] of ROWS) {
    it(`${what}: exits ${code}, says what to fix, and serves nothing`, async () => {
      const etc = path.join(dir, "etc");
      mkdirSync(etc, { mode: 0o755 });
      const allow = path.join(etc, "allow");
      writeFileSync(allow, "echo ok\n", { mode: 0o644 });
      make(allow);
      const commands = path.join(dir, "commands");
      const run = await runCli([path.join(dir, "results"), commands, "0.1", "--allow", allow]);
      assert.equal(run.code, code, run.stderr);
      assert.match(run.stderr, message);
      assert.equal(existsSync(`${commands}.daemon`), false);
    });
  }
});
