// Daemon hygiene, read from /proc: what --detach leaves behind (session, terminal, cwd, umask,
// descriptors, pidfile), SIGTERM with a running command, SIGHUP and the log, zombies, and
// start-up errors that reach the log.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs, { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { CommandFailedError, submitCommand } from "../../src/client/submit";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { daemonFiles } from "../../src/protocol/paths";
import { childrenOf, CLI, delay, isGonePid, openFds, procStat, procStatus, readOrEmpty, runCli, startDaemon, stopDaemon, useTempDir, waitFor, zombieChildren, type CliProcess } from "./support";

function hasCommand(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Descriptors beyond 0–2 of a bare `node -e 'setInterval(...)'`: Node's own (epoll, eventfd, pipes). */
async function bareNodeFds(): Promise<number> {
  // One that has started a child, as the daemon has (its warm shell): Node keeps a /dev/null
  // descriptor open after its first spawn. Sockets are counted apart, as for the daemon.
  const script = "require('child_process').spawn('true', [], { stdio: 'pipe' }); setInterval(() => {}, 1000)";
  const child = spawn(process.execPath, ["-e", script], { stdio: "ignore" });
  await delay(500);
  const count = openFds(child.pid ?? 0).filter((fd) => fd.fd > 2 && !fd.target.startsWith("socket:")).length;
  child.kill();
  return count;
}

async function waitGone(pid: number, ms = 15_000): Promise<void> {
  await waitFor(`pid ${pid} to exit`, () => isGonePid(pid), ms);
}

describe("hardening: --detach", function () {
  this.timeout(30_000);
  const pids: number[] = [];
  afterEach(async () => {
    for (const pid of pids.splice(0)) {
      try {
        process.kill(pid, "SIGTERM");
        await waitGone(pid);
      } catch {
        // gone
      }
    }
  });
  const tmp = useTempDir();

  it("a session of its own it does not lead, no terminal, cwd /, umask 0077, stdin /dev/null, no inherited descriptor, an atomic pidfile removed on exit", async function () {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    const log = tmp.file("daemon.log");
    const runDir = tmp.file("run");
    mkdirSync(runDir, { mode: 0o700 });
    const pidfile = path.join(runDir, "file-daemon.pid");
    const leak = tmp.file("inherited.txt");
    writeFileSync(leak, "");
    const pidfileEvents: string[] = [];
    const watcher = fs.watch(runDir, (_event, name) => pidfileEvents.push(String(name)));

    // Launched from a terminal (a pty made by `script`, so the launcher has a controlling
    // terminal), through a shell that opens a descriptor without close-on-exec (fd 7).
    const launch = `exec 7>'${leak}'; exec '${process.execPath}' '${CLI}' '${results}' '${commands}' 0.1 --detach --log '${log}' --pidfile '${pidfile}'`;
    const withTerminal = hasCommand("script");
    const output = withTerminal ? execFileSync("script", ["-qec", launch, "/dev/null"], { encoding: "utf8" }) : execFileSync("sh", ["-c", launch], { encoding: "utf8" });
    const pid = Number(/file-daemon started in the background, pid (\d+)/.exec(output)?.[1]);
    assert.ok(pid > 0, output);
    pids.push(pid);
    await waitFor("the daemon to serve", () => readLiveDaemon(daemonFiles(commands, results)));

    const stat = procStat(pid);
    assert.ok(stat !== null);
    assert.notEqual(stat.session, pid, "not a session leader: it can never acquire a terminal");
    assert.notEqual(stat.session, procStat(process.pid)?.session, "not in the launcher's session");
    assert.equal(procStat(stat.session), null, "its session's leader (the intermediate process) has exited");
    assert.equal(stat.ttyNr, 0, "no controlling terminal");
    assert.equal(readlinkSync(`/proc/${pid}/cwd`), "/");
    assert.equal(procStatus(pid, "Umask"), "0077");

    const fds = openFds(pid);
    assert.equal(fds.find((fd) => fd.fd === 0)?.target, "/dev/null");
    assert.equal(fds.find((fd) => fd.fd === 1)?.target, "/dev/null");
    assert.equal(fds.find((fd) => fd.fd === 2)?.target, log, "stderr goes to the log");
    assert.deepEqual(fds.filter((fd) => fd.target === leak), [], "the launcher's fd 7 was not inherited");
    assert.deepEqual(fds.filter((fd) => fd.fd > 2 && !fd.cloexec), [], "every descriptor beyond 0–2 is the daemon's own (close-on-exec)");
    const ours = new Set(openFds(process.pid).map((fd) => fd.target).filter((target) => target.startsWith("pipe:")));
    assert.deepEqual(fds.filter((fd) => ours.has(fd.target)), [], "no pipe shared with the process that started it");
    // The idle warm shell (a child of the daemon, its stdio three socket pairs) is the only other.
    const warmShells = childrenOf(pid).filter((child) => readlinkSync(`/proc/${child}/exe`).endsWith("sh"));
    const sockets = fds.filter((fd) => fd.target.startsWith("socket:"));
    assert.ok(sockets.length <= 3 * warmShells.length, `sockets only for the stdio of warm shells: ${sockets.length} sockets, ${warmShells.length} warm shell(s)`);
    const extra = fds.filter((fd) => fd.fd > 2 && fd.target !== log && fd.target !== "anon_inode:inotify" && !fd.target.startsWith("socket:"));
    const baseline = await bareNodeFds();
    assert.ok(extra.length <= baseline, `beyond 0–2, the log, inotify and warm shells: ${extra.length} descriptors (${extra.map((fd) => fd.target).join(", ")}); a bare node has ${baseline}`);

    // What the daemon runs inherits nothing either: the shell has 0, 1 and 2 only.
    const inside = await submitCommand("ls /proc/$$/fd", commands, results, 0.1, { capture: true });
    assert.equal(inside.stdout?.toString(), "0\n1\n2\n");

    assert.equal(readFileSync(pidfile, "utf8"), `${pid}\n`);
    assert.ok(pidfileEvents.some((name) => /^file-daemon\.pid\.\d+\.[0-9a-f]+\.tmp$/.test(name)), `written through a temporary file and a rename: ${pidfileEvents.join(", ")}`);
    watcher.close();

    process.kill(pid, "SIGTERM");
    await waitGone(pid);
    assert.equal(existsSync(pidfile), false, "the pidfile is removed on exit");
    assert.equal(existsSync(`${commands}.daemon`), false, "the info file too");
    assert.match(readOrEmpty(log), /SIGTERM received: stopping\n.*stopped\n$/);
    if (!withTerminal && this.test) this.test.title += " [no `script`: launched without a terminal]";
  });

  it("a stale pidfile (dead pid, reused pid, garbage) is replaced; one naming a live file-daemon is refused", async () => {
    const pidfile = tmp.file("daemon.pid");
    const log = tmp.file("daemon.log");
    const cases: [string, () => { content: string; cleanup?: () => void }, RegExp][] = [
      ["a dead pid", () => ({ content: execFileSync("sh", ["-c", "sh -c 'echo $$'"]).toString().trim() }), /named pid \d+, which is not running: stale, replaced/],
      ["a pid reused by another program", () => {
        const other = spawn("sleep", ["30"], { stdio: "ignore" });
        return { content: String(other.pid), cleanup: () => other.kill() };
      }, /named pid \d+, which is another program now: stale, replaced/],
      ["garbage", () => ({ content: "not a pid" }), /held "not a pid", not a pid: replaced/],
    ];
    for (const [name, make, message] of cases) {
      const { content, cleanup } = make();
      try {
        writeFileSync(pidfile, `${content}\n`);
        const daemon = await startDaemon(tmp.file(`commands-${cases.findIndex((c) => c[0] === name)}`), tmp.file("results"), 0.1, ["--pidfile", pidfile, "--log", log]);
        try {
          assert.equal(readFileSync(pidfile, "utf8"), `${daemon.pid}\n`, name);
          assert.match(readOrEmpty(log), message, name);
        } finally {
          await stopDaemon(daemon);
        }
        assert.equal(existsSync(pidfile), false, name);
      } finally {
        cleanup?.();
      }
    }

    const first = await startDaemon(tmp.file("commands-a"), tmp.file("results-a"), 0.1, ["--pidfile", pidfile]);
    try {
      const second = await runCli([tmp.file("results-b"), tmp.file("commands-b"), "0.1", "--pidfile", pidfile]);
      assert.equal(second.code, 4, "exit 4: another daemon serves these files");
      assert.match(second.stderr, new RegExp(`the pidfile ${pidfile} names file-daemon pid ${first.pid}, which is running; stop it, or give this daemon another --pidfile \\[ALREADY_RUNNING\\]`));
      assert.equal(readFileSync(pidfile, "utf8"), `${first.pid}\n`, "the first daemon's pidfile is left alone");
      assert.equal(readLiveDaemon(daemonFiles(tmp.file("commands-b"), tmp.file("results-b"))), null);
    } finally {
      await stopDaemon(first);
    }
  });
});

describe("hardening: signals and children", function () {
  this.timeout(30_000);
  let daemon: CliProcess | undefined;
  afterEach(async () => {
    await stopDaemon(daemon);
    daemon = undefined;
  });
  const tmp = useTempDir();

  it("SIGTERM: takes no new command, lets the running one finish within the grace period, writes its result, exits 0", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    const ran = tmp.file("ran");
    const log = tmp.file("daemon.log");
    daemon = await startDaemon(commands, results, 0.1, ["--channels", "2", "--stop-grace", "3", "--log", log]);
    const running = submitCommand(`echo start >> '${ran}'; sleep 0.6; echo end >> '${ran}'`, commands, results, 0.1);
    await waitFor("the command to start", () => readOrEmpty(ran) !== "");
    daemon.child.kill("SIGTERM");
    await waitFor("the daemon to start stopping", () => readOrEmpty(log).includes("SIGTERM received"));
    const late = submitCommand(`echo late >> '${ran}'`, commands, results, 0.1).catch((err: unknown) => err as Error & { code?: string });
    assert.equal((await running).code, 0, "the running command finished and its result reached its submitter");
    const refused = (await late) as Error & { code?: string };
    assert.equal(refused.code, "DAEMON_NOT_RUNNING", String(refused));
    assert.match(refused.message, /did not run|start it with/);
    assert.deepEqual(await daemon.exited, { code: 0, signal: null });
    assert.equal(readOrEmpty(ran), "start\nend\n", "the late command never ran");
    assert.match(readOrEmpty(log), /stopping: waiting for 1 running command\(s\)/);
    assert.equal(readOrEmpty(commands), "", "nothing left pending");
  });

  it("SIGTERM: a command still running after the grace period is killed with its whole group, its result says so, exit 0", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    const pgidFile = tmp.file("pgid");
    daemon = await startDaemon(commands, results, 0.1, ["--stop-grace", "0.5", "--kill-grace", "0.5"]);
    const running = submitCommand(`echo $$ > '${pgidFile}'; sleep 30 & sleep 30; wait`, commands, results, 0.1).catch((err: unknown) => err as CommandFailedError);
    const pgid = await waitFor("the command to start", () => Number(readOrEmpty(pgidFile).trim()));
    const stopAt = performance.now();
    daemon.child.kill("SIGTERM");
    const error = await running;
    assert.equal(error.code, "KILLED", String(error));
    assert.equal(error.message, "killed because the daemon was stopped");
    assert.equal(error.result?.signal, "SIGTERM");
    assert.deepEqual(await daemon.exited, { code: 0, signal: null });
    assert.ok(performance.now() - stopAt < 4000, `stopped in ${Math.round(performance.now() - stopAt)} ms`);
    await waitFor("every process of the command's group to be gone", () => {
      try {
        process.kill(-pgid, 0);
        return false;
      } catch {
        return true;
      }
    }, 3000);
  });

  it("SIGHUP reopens the log: after logrotate renames it, new lines go to a new file; a log that cannot be reopened is kept", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    const log = tmp.file("daemon.log");
    daemon = await startDaemon(commands, results, 0.1, ["--log", log]);
    renameSync(log, `${log}.1`);
    daemon.child.kill("SIGHUP");
    await waitFor("a new log file", () => readOrEmpty(log).includes("SIGHUP received: log reopened"));
    writeFileSync(results, "garbage from a third party\n");
    await waitFor("the next line in the new file", () => readOrEmpty(log).includes("cleared unreadable content"));
    assert.match(readOrEmpty(`${log}.1`), /info: serving /);
    assert.doesNotMatch(readOrEmpty(`${log}.1`), /SIGHUP|cleared/, "nothing new in the renamed file");

    renameSync(log, `${log}.2`);
    mkdirSync(log);
    daemon.child.kill("SIGHUP");
    await waitFor("the daemon to say it kept the old file", () => readOrEmpty(`${log}.2`).includes("cannot reopen the log"));
    assert.equal((await submitCommand("exit 3", commands, results, 0.1)).code, 3, "still serving");
    assert.equal(daemon.child.exitCode, null);
  });

  it("no zombies after 200 commands (some leave background children behind)", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    daemon = await startDaemon(commands, results, 0.1, ["--channels", "4"]);
    const kinds = ["true", "exit 3", "sleep 0.001 &", "(true &); true", "kill -TERM $$"];
    // Four submitters at once on four channels: 50 commands each.
    await Promise.all(
      [0, 1, 2, 3].map(async (lane) => {
        for (let i = lane; i < 200; i += 4) await submitCommand(kinds[i % kinds.length] as string, commands, results, 0.1);
      }),
    );
    await delay(100);
    assert.deepEqual(zombieChildren(daemon.pid), [], "no child of the daemon is left unreaped");
  });
});

describe("hardening: start-up errors reach the log", function () {
  this.timeout(30_000);
  const tmp = useTempDir();

  it("UNSAFE_FILES, BAD_OPTION and an unknown option: the exit code, stderr, and one line in --log (also with --detach)", async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    writeFileSync(commands, "");
    chmodSync(commands, 0o666);
    const log = tmp.file("daemon.log");
    const line = (marker: string) => new RegExp(`^\\S+ file-daemon\\[\\d+\\] error: .*${marker}$`);

    const unsafe = await runCli([results, commands, "0.1", "--log", log]);
    assert.equal(unsafe.code, 1);
    assert.match(unsafe.stderr, /writable by every user.*\[UNSAFE_FILES\]/);
    assert.match(readOrEmpty(log).trim(), line("\\[UNSAFE_FILES\\]"));

    fs.rmSync(log);
    const detached = await runCli([results, commands, "0.1", "--detach", "--log", log]);
    assert.equal(detached.code, 1);
    assert.match(detached.stderr, /writable by every user.*\[UNSAFE_FILES\]/);
    const lines = readOrEmpty(log).trim().split("\n");
    assert.equal(lines.length, 1, `written once: ${lines.join("\n")}`);
    assert.match(lines[0] as string, line("\\[UNSAFE_FILES\\]"));

    chmodSync(commands, 0o600);
    fs.rmSync(log);
    const badOption = await runCli([results, commands, "0.1", "--channels", "0", "--log", log]);
    assert.equal(badOption.code, 2);
    assert.match(badOption.stderr, /channels must be a whole number from 1 to 64, got "0" \[BAD_OPTION\]/);
    assert.match(readOrEmpty(log).trim(), line("\\[BAD_OPTION\\]"));

    fs.rmSync(log);
    const unknown = await runCli([results, commands, "0.1", "--bogus", `--log=${log}`]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /Unknown option '--bogus'/);
    assert.match(readOrEmpty(log).trim(), /error: Unknown option '--bogus'/);
  });
});
