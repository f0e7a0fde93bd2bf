// Security: private modes whatever the umask, unsafe files refused at start-up and when swapped
// in afterwards (with the reason), and a root-started daemon that drops to another user.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs, { chmodSync, chownSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { submitCommand } from "../../src/client/submit";
import { Daemon } from "../../src/daemon/daemon";
import { encodeCommandRecord, PLAIN_COMMAND } from "../../src/protocol/command-record";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { pidNamespace } from "../../src/protocol/io/liveness";
import { tryLock } from "../../src/protocol/io/lock";
import { daemonFiles } from "../../src/protocol/paths";
import { decodeResults } from "../../src/protocol/result-record";
import { CLI, IS_ROOT, NOBODY, REPO, procStatus, readOrEmpty, runCli, startDaemon, stopDaemon, submitInProcess, useTempDir, waitFor, type CliProcess } from "./support";

function mode(file: string): string {
  return (statSync(file).mode & 0o7777).toString(8).padStart(4, "0");
}

describe("hardening: file modes", function () {
  this.timeout(30_000);
  let daemon: CliProcess | undefined;
  afterEach(async () => {
    if (daemon !== undefined) {
      daemon.child.kill("SIGTERM");
      await daemon.exited;
    }
    daemon = undefined;
  });
  const tmp = useTempDir();

  it("a daemon started with umask 000 still creates its files 0600, lock directories 0700; the info file and pidfile are 0644", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    const log = tmp.file("daemon.log");
    const pidfile = tmp.file("daemon.pid");
    const child = spawn("sh", ["-c", `umask 000; exec "$0" "$@"`, process.execPath, CLI, results, commands, "0.1", "--channels", "2", "--log", log, "--pidfile", pidfile], { stdio: "ignore" });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    daemon = { child, pid: child.pid ?? 0, output: () => "", exited };
    await waitFor("the daemon to serve", () => readLiveDaemon(daemonFiles(commands, results)));
    assert.equal(procStatus(daemon.pid, "Umask"), "0000");
    assert.equal((await submitCommand("exit 0", commands, results, 0.1)).code, 0);
    const expected: Record<string, string> = {
      commands: "0600",
      results: "0600",
      "commands.1": "0600",
      "results.1": "0600",
      "commands.daemon.lock": "0700",
      "daemon.log": "0600",
      // Nothing secret, and a submitter of the same group (--file-mode 0660) must read it.
      "commands.daemon": "0644",
      // The classic pidfile mode: tools that read it may run as other users.
      "daemon.pid": "0644",
    };
    assert.deepEqual(Object.fromEntries(Object.keys(expected).map((name) => [name, mode(tmp.file(name))])), expected);
  });

  it("the lock directories are private whatever the umask (the code every party uses)", () => {
    const previous = process.umask(0);
    try {
      const file = tmp.file("commands");
      const held = tryLock(file, { stale: 10_000 });
      assert.ok(held);
      assert.equal(mode(`${file}.lock`), "0700");
      held.release();
    } finally {
      process.umask(previous);
    }
  });

  // A temporary file lives for microseconds and is written synchronously, so no watcher sees it
  // (an fs.watch version of this test saw 0 of 150). strace sees every open(2) that creates one,
  // with the mode it asks for; under umask 000 that is the mode the file gets. Every chmod of a
  // temp is checked too, so "create it 0644, chmod it 0600 before the rename" fails as well.
  describe("temporary files of atomic writes, seen by strace under umask 000", function () {
    before(function () {
      if (!hasStrace()) this.skip(); // Say so: without strace nothing here is checked.
    });

    it("writeFileAtomicSync (the code every party uses) creates each temp 0600 and never widens it", async () => {
      const file = tmp.file("commands");
      const traces = tmp.file("traces");
      mkdirSync(traces);
      const script = `const { writeFileAtomicSync } = require(${JSON.stringify(ATOMIC_WRITE)});
        for (let i = 0; i < 5; i++) writeFileAtomicSync(process.argv[1], "x".repeat(100000));`;
      const run = await traced(traces, "writer", [process.execPath, "-e", script, file]);
      assert.equal(run.code, 0, run.output);
      const ops = tempOps(traces, "writer");
      const created = ops.filter((op) => op.call === "create");
      assert.equal(created.length, 5, `5 writes, 5 temps created; strace saw:\n${ops.map(String).join("\n")}`);
      for (const op of ops) assert.equal(op.mode, "0600", `${op.call} ${op.file} with mode ${op.mode}`);
      assert.equal(mode(file), "0600");
    });

    it("a daemon and a submitter (the CLI) create every temp with the mode of the file it becomes: 0600, the info file and pidfile 0644", async () => {
      const commands = tmp.file("commands");
      const results = tmp.file("results");
      const pidfile = tmp.file("daemon.pid");
      const traces = tmp.file("traces");
      mkdirSync(traces);
      const served = traced(traces, "daemon", [process.execPath, CLI, results, commands, "0.1", "--channels", "2", "--pidfile", pidfile]);
      const info = await waitFor("the traced daemon to serve", () => readLiveDaemon(daemonFiles(commands, results)), 20_000);
      try {
        assert.equal(procStatus(info.pid, "Umask"), "0000");
        const submitted = await traced(traces, "submit", [process.execPath, CLI, "submit", "-c", commands, "-r", results, "-s", "0.1", "--output", "--", "echo hi"]);
        assert.equal(submitted.code, 0, submitted.output);
        assert.equal(submitted.output, "hi\n");
      } finally {
        process.kill(info.pid, "SIGTERM");
      }
      const stopped = await served;
      assert.equal(stopped.code, 0, stopped.output);
      const expected = (file: string) => (["commands.daemon", "daemon.pid"].includes(path.basename(file).replace(TEMP_NAME, "")) ? "0644" : "0600");
      const seen: Record<string, string[]> = {};
      for (const party of ["daemon", "submit"]) {
        const ops = tempOps(traces, party);
        for (const op of ops) assert.equal(op.mode, expected(op.file), `${party}: ${op.call} ${op.file} with mode ${op.mode}`);
        seen[party] = [...new Set(ops.filter((op) => op.call === "create").map((op) => path.basename(op.file).replace(TEMP_NAME, "")))].sort();
      }
      // What each party must have written through a temp, so the checks above looked at something
      // (the command goes to channel 0 or 1: "results" or "results.1").
      const wrote = (party: string, name: RegExp) => assert.ok(seen[party]?.some((file) => name.test(file)), `${party} wrote ${name} through a temp; saw ${seen[party]?.join(" ")}`);
      for (const name of [/^commands\.daemon$/, /^daemon\.pid$/, /^results(\.1)?$/]) wrote("daemon", name);
      for (const name of [/^commands(\.1)?$/, /^results(\.1)?$/]) wrote("submit", name);
    });
  });
});

/** The suffix writeFileAtomicSync gives a temp: `X.<pid>.<hex>.tmp`. */
const TEMP_NAME = /\.\d+\.[0-9a-f]+\.tmp$/;
const ATOMIC_WRITE = path.join(REPO, "dist", "src", "protocol", "io", "atomic-write.js");
const TRACED_CALLS = "open,openat,creat,chmod,fchmod,fchmodat";

function hasStrace(): boolean {
  return spawnSync("strace", ["-f", "-o", "/dev/null", "true"], { stdio: "ignore" }).status === 0;
}

/**
 * Runs `argv` under strace with umask 000, one trace file per thread (`-ff`: a call is never
 * split across lines), full strings (`-s`) and the path of every descriptor (`-y`).
 */
function traced(dir: string, name: string, argv: string[]): Promise<{ code: number | null; output: string }> {
  const args = ["-ff", "-y", "-s", "4096", "-e", `trace=${TRACED_CALLS}`, "-o", path.join(dir, name), "--", "sh", "-c", 'umask 000; exec "$0" "$@"', ...argv];
  const child = spawn("strace", args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, output })));
}

interface TempOp {
  readonly call: "create" | "chmod";
  readonly file: string;
  /** The mode it asked for, as 4 octal digits ("none" when a create gave none). */
  readonly mode: string;
}

/** Every creation (open with O_CREAT, creat) and chmod of a `.tmp` file in the traces of `name`. */
function tempOps(dir: string, name: string): TempOp[] {
  const ops: TempOp[] = [];
  const octal = (text: string | undefined) => (text === undefined ? "none" : parseInt(text, 8).toString(8).padStart(4, "0"));
  for (const trace of readdirSync(dir).filter((file) => file.startsWith(`${name}.`))) {
    for (const line of readFileSync(path.join(dir, trace), "utf8").split("\n")) {
      const create = /^(?:open|openat|creat)\((?:[^,"]*, )?"([^"]+)", ([^)]*)\) = \d+/.exec(line);
      if (create !== null && create[1]?.endsWith(".tmp") && (line.startsWith("creat(") || create[2]?.includes("O_CREAT"))) {
        ops.push({ call: "create", file: create[1], mode: octal(/(?:^|, )(0[0-7]*)$/.exec(create[2] ?? "")?.[1]) });
      }
      const chmod = /^(?:chmod\("([^"]+)"|fchmod\(\d+<([^>]+)>|fchmodat\([^,]*, "([^"]+)"), (0[0-7]*)/.exec(line);
      const target = chmod?.[1] ?? chmod?.[2] ?? chmod?.[3];
      if (target?.endsWith(".tmp")) ops.push({ call: "chmod", file: target, mode: octal(chmod?.[4]) });
    }
  }
  return ops.map((op) => Object.assign(op, { toString: () => `${op.call} ${op.file} ${op.mode}` }));
}

describe("hardening: unsafe files", function () {
  this.timeout(30_000);
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });
  const tmp = useTempDir();

  const atStart: [string, (f: { commands: string; dir: string; other: string }) => void, RegExp, boolean][] = [
    ["a commands file every user may write", ({ commands }) => (writeFileSync(commands, ""), chmodSync(commands, 0o666)), /commands is writable by every user \(mode 0666\); run: chmod o-w/, false],
    ["a commands file its group may write", ({ commands }) => (writeFileSync(commands, ""), chmodSync(commands, 0o620)), /commands is writable by its group \(mode 0620\); run: chmod g-w .*, or configure a group-writable file mode/, false],
    ["a commands file that is a symbolic link", ({ commands, other }) => (writeFileSync(other, "touch pwned\n"), symlinkSync(other, commands)), /commands is a symbolic link; use the real path/, false],
    ["a commands file with another hard link", ({ commands, other }) => (writeFileSync(other, ""), linkSync(other, commands)), /commands has 2 hard links, so it is also another file/, false],
    ["a FIFO as the commands file", ({ commands }) => execFileSync("mkfifo", ["-m", "600", commands]), /commands is not a regular file/, false],
    ["a directory every user may write", ({ dir }) => chmodSync(dir, 0o777), /is writable by every user \(mode 0777\); use a private directory or run: chmod o-w/, false],
    ["a commands file of another user", ({ commands }) => (writeFileSync(commands, ""), chownSync(commands, NOBODY, NOBODY)), /commands belongs to uid 65534, not to the daemon's user \(uid 0\); chown it or remove it/, true],
    ["a directory of another user", ({ dir }) => chownSync(dir, NOBODY, NOBODY), /belongs to uid 65534, who could replace the commands file, not to the daemon's user \(uid 0\)/, true],
  ];

  for (const [name, make, message, rootOnly] of atStart) {
    it(`refuses to start on ${name}, and says why`, async function () {
      if (rootOnly && !IS_ROOT) this.skip();
      const dir = tmp.file("files");
      mkdirSync(dir, { mode: 0o700 });
      const commands = path.join(dir, "commands");
      make({ commands, dir, other: tmp.file("other") });
      await assert.rejects(Daemon.start({ commands, results: path.join(dir, "results"), sleepTime: 0.1 }), (err: Error & { code?: string }) => {
        assert.equal(err.code, "UNSAFE_FILES");
        assert.match(err.message, /^refusing to serve unsafe files: /);
        assert.match(err.message, message);
        return true;
      });
      chmodSync(dir, 0o700);
    });
  }

  it("the command line exits 1 with the reason and the [UNSAFE_FILES] marker", async () => {
    const commands = tmp.file("commands");
    writeFileSync(commands, "");
    chmodSync(commands, 0o646);
    const { code, stderr } = await runCli([tmp.file("results"), commands, "0.1"]);
    assert.equal(code, 1);
    assert.match(stderr, /^file-daemon: refusing to serve unsafe files: .*commands is writable by every user \(mode 0646\); run: chmod o-w .* \[UNSAFE_FILES\]\n$/);
  });

  /** Swaps of the commands file (or its directory) after the daemon started; none may run. */
  const swaps: [string, (f: { commands: string; dir: string; record: string; other: string }) => void, "refused" | "replaced", RegExp, boolean][] = [
    ["a commands file every user may write", ({ commands, record }) => (writeFileSync(`${commands}.new`, record), chmodSync(`${commands}.new`, 0o666), renameSync(`${commands}.new`, commands)), "refused", /commands is writable by every user \(mode 0666\)/, false],
    ["a commands file with another hard link", ({ commands, record, other }) => (writeFileSync(other, record), linkSync(other, `${commands}.new`), renameSync(`${commands}.new`, commands)), "refused", /has 2 hard links/, false],
    ["a directory made writable by every user", ({ commands, dir, record }) => (writeFileSync(commands, record), chmodSync(dir, 0o777)), "refused", /is writable by every user \(mode 0777\)/, false],
    ["a symbolic link to a file holding a command", ({ commands, record, other }) => (writeFileSync(other, record), symlinkSync(other, `${commands}.new`), renameSync(`${commands}.new`, commands)), "replaced", /commands is a symbolic link; replaced it with an empty file without reading it/, false],
    ["a commands file of another user", ({ commands, record }) => (writeFileSync(`${commands}.new`, record), chownSync(`${commands}.new`, NOBODY, NOBODY), renameSync(`${commands}.new`, commands)), "refused", /belongs to uid 65534, not to the daemon's user/, true],
    ["a directory given to another user", ({ commands, dir, record }) => (writeFileSync(commands, record), chownSync(dir, NOBODY, NOBODY)), "refused", /belongs to uid 65534, who could replace the commands file/, true],
  ];

  it(`refuses commands from files swapped in after start (${swaps.length} kinds), says why, runs none, and keeps serving`, async function () {
    const dir = tmp.file("files");
    mkdirSync(dir, { mode: 0o700 });
    const commands = path.join(dir, "commands");
    const results = path.join(dir, "results");
    const log: string[] = [];
    daemon = await Daemon.start({ commands, results, sleepTime: 0.1, log: { info: (m) => log.push(m), error: (m) => log.push(m) } });
    for (const [index, [name, swap, outcome, message, rootOnly]] of swaps.entries()) {
      if (rootOnly && !IS_ROOT) continue;
      const pwned = tmp.file(`pwned-${index}`);
      const other = tmp.file(`other-${index}`);
      const id = `swapped-${index}`;
      const record = encodeCommandRecord({ command: `touch '${pwned}'`, id, pid: process.pid, pidns: pidNamespace(), ...PLAIN_COMMAND, legacy: false });
      log.length = 0;
      try {
        swap({ commands, dir, record, other });
        if (outcome === "refused") {
          const result = await waitFor("the refusal", () => {
            const decoded = decodeResults(readFileSync(results));
            return decoded.kind === "done" && decoded.id === id ? decoded : null;
          });
          assert.equal(result.status, "refused");
          assert.match(result.message ?? "", message);
          assert.match(result.message ?? "", /; the command was not run$/);
          assert.ok(log.some((line) => line.includes(`refused ${id}`)), log.join("\n"));
        } else {
          await waitFor("the daemon to replace it", () => log.some((line) => message.test(line)));
          assert.equal(fs.lstatSync(commands).isFile(), true);
          assert.equal(readFileSync(other, "utf8"), record, "the file the link pointed to is untouched");
        }
        assert.equal(readFileSync(commands, "utf8"), "");
        assert.equal(existsSync(pwned), false, "the swapped-in command did not run");
        // The owner fixes the cause; the daemon serves again.
        chmodSync(dir, 0o700);
        chownSync(dir, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
        writeFileSync(results, "");
        assert.equal((await submitCommand(`exit ${index}`, commands, results, 0.1)).code, index);
      } catch (err) {
        (err as Error).message = `${name}: ${(err as Error).message}\nlog: ${log.join("\n")}`;
        throw err;
      }
    }
  });
});

describe("hardening: a daemon started as root drops to --user", function () {
  this.timeout(30_000);
  let daemon: CliProcess | undefined;
  afterEach(async () => {
    await stopDaemon(daemon);
    daemon = undefined;
  });
  const tmp = useTempDir();
  before(function () {
    if (!IS_ROOT) this.skip();
  });

  function nobodyDir(name: string): string {
    chmodSync(tmp.path, 0o755);
    const dir = tmp.file(name);
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, NOBODY, NOBODY);
    return dir;
  }

  it("--user nobody: every id is nobody's before it serves, commands run as nobody, and the files stay usable by root and nobody", async () => {
    const dir = nobodyDir("files");
    const commands = path.join(dir, "commands");
    const results = path.join(dir, "results");
    daemon = await startDaemon(commands, results, 0.1, ["--user", "nobody"]);
    assert.equal(procStatus(daemon.pid, "Uid"), "65534\t65534\t65534\t65534");
    assert.equal(procStatus(daemon.pid, "Gid"), "65534\t65534\t65534\t65534");
    assert.equal(procStatus(daemon.pid, "Groups"), "65534");
    assert.equal(procStatus(daemon.pid, "CapEff"), "0000000000000000", "no capability left");
    const result = await submitCommand("id -u; id -g; echo $HOME; echo $USER", commands, results, 0.1, { capture: true });
    assert.equal(result.stdout?.toString(), `65534\n65534\n/nonexistent\nnobody\n`);
    for (const name of ["commands", "results", "commands.daemon"]) assert.equal(statSync(path.join(dir, name)).uid, NOBODY, name);
    assert.deepEqual(await submitInProcess("exit 6", commands, results, 0.1, { uid: NOBODY }).outcome, { code: 6, status: "exited" });
    assert.equal((await submitCommand("exit 7", commands, results, 0.1)).code, 7);
  });

  it("--user with files left by a root daemon, or a directory the user cannot write: exits 1 and says what to chown", async () => {
    const dir = nobodyDir("files");
    writeFileSync(path.join(dir, "commands"), "", { mode: 0o600 });
    const leftover = await runCli([path.join(dir, "results"), path.join(dir, "commands"), "0.1", "--user", "nobody"]);
    assert.equal(leftover.code, 1);
    assert.match(leftover.stderr, /cannot open .*commands: it belongs to uid 0 and the daemon runs as uid 65534 .*chown it to the daemon's user, or remove it \[PERMISSION\]/);

    const rootDir = tmp.file("root-only");
    mkdirSync(rootDir, { mode: 0o700 });
    const denied = await runCli([path.join(rootDir, "results"), path.join(rootDir, "commands"), "0.1", "--user", "nobody"]);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /permission denied \(EACCES\); make the directory writable by this user \[PERMISSION\]/);

    const unknown = await runCli([path.join(dir, "results"), path.join(dir, "commands"), "0.1", "--user", "no-such-user-here"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /--user no-such-user-here: no such user in \/etc\/passwd \[BAD_OPTION\]/);
  });

  it("started as root without --user: warns (stderr, and --log) that every command runs as root and what to do; --user nobody: no warning", async () => {
    const rootDir = tmp.file("root-files");
    mkdirSync(rootDir, { mode: 0o700 });
    daemon = await startDaemon(path.join(rootDir, "commands"), path.join(rootDir, "results"), 0.1);
    const warning = await waitFor("the root warning on stderr", () => daemon?.output().split("\n").find((line) => line.includes("warning:")));
    assert.match(warning, /file-daemon\[\d+\] warning: running as root without --user: every command it runs has root's full power/);
    assert.match(warning, /start it with --user NAME .*or run it as a service user/);
    await stopDaemon(daemon);

    const log = tmp.file("root.log");
    daemon = await startDaemon(path.join(rootDir, "commands"), path.join(rootDir, "results"), 0.1, ["--log", log]);
    await waitFor("the root warning in --log", () => readOrEmpty(log).includes("warning: running as root without --user"));
    await stopDaemon(daemon);

    const dir = nobodyDir("files");
    const nobodyLog = tmp.file("nobody.log");
    writeFileSync(nobodyLog, "");
    chownSync(nobodyLog, NOBODY, NOBODY);
    daemon = await startDaemon(path.join(dir, "commands"), path.join(dir, "results"), 0.1, ["--user", "nobody", "--log", nobodyLog]);
    assert.equal((await submitCommand("exit 0", path.join(dir, "commands"), path.join(dir, "results"), 0.1)).code, 0);
    assert.match(readOrEmpty(nobodyLog), / serving /);
    assert.doesNotMatch(readOrEmpty(nobodyLog) + daemon.output(), /warning/);
  });

  it("--detach --user nobody: the log created by root is handed to nobody, and the daemon serves", async () => {
    const dir = nobodyDir("files");
    const commands = path.join(dir, "commands");
    const results = path.join(dir, "results");
    const log = tmp.file("daemon.log");
    const launched = await runCli([results, commands, "0.1", "--detach", "--user", "nobody", "--log", log]);
    assert.equal(launched.code, 0, launched.stderr);
    const pid = Number(/pid (\d+)/.exec(launched.stdout)?.[1]);
    try {
      assert.equal(statSync(log).uid, NOBODY);
      assert.equal(procStatus(pid, "Uid"), "65534\t65534\t65534\t65534");
      assert.equal((await submitCommand("id -u", commands, results, 0.1, { capture: true })).stdout?.toString(), "65534\n");
      process.kill(pid, "SIGHUP");
      await waitFor("the log to be reopened by nobody", () => readOrEmpty(log).includes("SIGHUP received: log reopened"));
    } finally {
      process.kill(pid, "SIGTERM");
      await waitFor("the daemon to exit", () => !existsSync(`/proc/${pid}`), 15_000);
    }
  });
});
