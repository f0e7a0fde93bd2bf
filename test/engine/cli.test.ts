// `file-daemon submit` as a shell script sees it: the real CLI (a process of its own, run by the
// same node as the tests) against a real daemon, its exit status, stdout and stderr.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, realpathSync, writeFileSync } from "node:fs";
import { CLI, startDaemonProcess, stopDaemonProcess, type DaemonProcess } from "../helpers/daemon-process";
import { delay } from "../helpers/small";
import { useTempDir } from "../helpers/temp-dir";

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly ms: number;
}

/** Runs `file-daemon ...args` to its end; resolves on 'close', once its output is all read. */
function runCli(args: string[], killAfterMs = 20_000, input?: Buffer): Promise<Run> {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], { stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
  child.stdin?.end(input);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), ms: performance.now() - started });
    });
  });
}

describe("cli: file-daemon submit", function () {
  this.timeout(30_000);
  let daemon: DaemonProcess | undefined;
  afterEach(async () => {
    await stopDaemonProcess(daemon);
    daemon = undefined;
  });
  const tmp = useTempDir({ prefix: "file-daemon-cli-" });
  const submit = (...args: string[]) => runCli(["submit", "-c", tmp.file("commands"), "-r", tmp.file("results"), "-s", "0.1", ...args]);
  const serve = async () => {
    daemon = await startDaemonProcess(tmp.file("commands"), tmp.file("results"), 0.1);
  };

  describe("exit status (as documented in --help)", () => {
    beforeEach(serve);

    it("0 when the command exits 0, and prints nothing of its own", async () => {
      const run = await submit("--", "true");
      assert.deepEqual([run.code, run.stdout.toString(), run.stderr.toString()], [0, "", ""]);
    });

    it("the command's own status: exit 3 → 3", async () => {
      const run = await submit("--", "exit 3");
      assert.deepEqual([run.code, run.stderr.toString()], [3, ""]);
    });

    it("255 stays 255", async () => {
      assert.equal((await submit("--", "exit 255")).code, 255);
    });

    it("128+N when signal N ended the command: kill -USR1 $$ → 138", async () => {
      const run = await submit("--", "kill -USR1 $$");
      assert.equal(run.code, 138, run.stderr.toString());
    });

    it("124 when it ran past --timeout (as timeout(1)), with the reason on stderr", async () => {
      const run = await submit("-t", "0.3", "--", "sleep 5");
      assert.equal(run.code, 124, run.stderr.toString());
      assert.match(run.stderr.toString(), /^file-daemon: .*timed out after 0\.3 s.*\[TIMEOUT\]\n$/);
      assert.ok(run.ms < 4000, `it took ${run.ms} ms: the command was not killed at its timeout`);
    });

    it("--output prints the command's stdout and stderr byte for byte, each on its own stream", async () => {
      const run = await submit("--output", "--", "printf 'a\\000b\\377\\n\\r'; printf 'e\\001rr\\r\\n' >&2; exit 4");
      assert.equal(run.code, 4);
      assert.deepEqual(run.stdout, Buffer.from([0x61, 0x00, 0x62, 0xff, 0x0a, 0x0d]));
      assert.deepEqual(run.stderr, Buffer.from("e\u0001rr\r\n", "latin1"));
    });

    it("without --output nothing of the command's output is printed", async () => {
      const run = await submit("--", "echo out; echo err >&2");
      assert.deepEqual([run.code, run.stdout.length, run.stderr.length], [0, 0, 0]);
    });

    it("--output with a timeout still prints what the command wrote before it was killed", async () => {
      const run = await submit("--output", "-t", "0.5", "--", "echo before; sleep 5");
      assert.equal(run.code, 124);
      assert.equal(run.stdout.toString(), "before\n");
    });
  });

  describe("125: file-daemon itself failed, and says why on stderr", () => {
    it("no daemon: 125 after the default 5 s wait, naming the files, how long it waited and how to start one", async () => {
      const run = await submit("--", "true");
      assert.equal(run.code, 125);
      assert.match(run.stderr.toString(), /^file-daemon: no file-daemon served .*commands within 5 s; start it with: file-daemon .*results .*commands .*\[DAEMON_NOT_RUNNING\]\n$/);
      assert.ok(run.ms >= 4500, `waited for one to start (${run.ms} ms)`);
    });

    it("no daemon with --wait 0: 125 at once", async () => {
      const run = await submit("--wait", "0", "--", "true");
      assert.equal(run.code, 125);
      assert.match(run.stderr.toString(), /within 0 s.*\[DAEMON_NOT_RUNNING\]/);
      assert.ok(run.ms < 4000, `${run.ms} ms`);
    });

    it("--wait 3 with the daemon started 1 s after the submit: the command runs", async () => {
      const pending = submit("--wait", "3", "--", "exit 7");
      await delay(1000);
      assert.equal(existsSync(tmp.file("commands.daemon")), false, "no daemon yet when it was submitted");
      await serve();
      const run = await pending;
      assert.equal(run.code, 7, run.stderr.toString());
    });

    it("--wait 0.5 and no daemon: gives up after about half a second", async () => {
      const run = await submit("--wait", "0.5", "--", "true");
      assert.equal(run.code, 125);
      assert.match(run.stderr.toString(), /\[DAEMON_NOT_RUNNING\]/);
      assert.ok(run.ms >= 450, `gave up after ${run.ms} ms`);
    });

    it("-c X -r X (the same file for both): 125 at once, saying so, even with a daemon waited for", async () => {
      const same = tmp.file("commands");
      const run = await runCli(["submit", "-c", same, "-r", same, "--wait", "10", "--", "true"]);
      assert.equal(run.code, 125);
      assert.match(run.stderr.toString(), /^file-daemon: the commands and results files must be different files, got .*commands for both \[BAD_OPTION\]\n$/);
      assert.ok(run.ms < 5000, `${run.ms} ms: it waited for a daemon first`);
    });

    const mistakes: [string, string[], RegExp][] = [
      ["-t abc", ["-t", "abc", "--", "true"], /^file-daemon: -t\/--timeout expects a number of seconds from 0 to 2147483 \(e\.g\. -t 30, or 0 for no limit\), got 'abc' \[BAD_OPTION\]\n$/],
      ["--timeout=-1", ["--timeout=-1", "--", "true"], /-t\/--timeout expects a number of seconds .*got '-1'/],
      ["-s 0", ["-s", "0", "--", "true"], /-s\/--sleep expects a number of seconds above 0 and at most 3600 .*got '0'/],
      ["--wait soon", ["--wait", "soon", "--", "true"], /--wait expects a number of seconds from 0 .*got 'soon'/],
      ["-t with no value", ["-t"], /^file-daemon: option -t, --timeout needs a value \(see file-daemon submit --help\) \[BAD_OPTION\]\n$/],
      ["an option of the command before --", ["ls", "-l"], /Unknown option '-l' .*put the command after --: file-daemon submit -c C -r R -- ls -l/],
      ["no command", [], /no command given; put it after --/],
    ];
    for (const [name, args, message] of mistakes) {
      it(`${name}: 125 and a message that says what was expected`, async () => {
        const run = await submit(...args);
        assert.equal(run.code, 125, run.stderr.toString());
        assert.match(run.stderr.toString(), message);
        assert.doesNotMatch(run.stderr.toString(), /got null/);
      });
    }
  });

  describe("the other commands", () => {
    it("a mistyped command (sumbit) says 'unknown command' and lists the commands, exit 2", async () => {
      const run = await runCli(["sumbit", "-c", tmp.file("commands"), "-r", tmp.file("results"), "--", "true"]);
      assert.equal(run.code, 2);
      const stderr = run.stderr.toString();
      assert.match(stderr, /^file-daemon: unknown command 'sumbit'\. Did you mean 'submit'\? The commands are: run, submit, status, help /);
      assert.doesNotMatch(stderr, /unknown option/i);
      assert.equal(existsSync(tmp.file("commands.daemon")), false, "no daemon was started");
    });

    it("a mistyped command alone (staus) says the same", async () => {
      const run = await runCli(["staus"]);
      assert.equal(run.code, 2);
      assert.match(run.stderr.toString(), /^file-daemon: unknown command 'staus'\. Did you mean 'status'\? The commands are: run, submit, status, help/);
    });

    it("an unknown option of the daemon is still named as one (exit 2)", async () => {
      const run = await runCli([tmp.file("results"), tmp.file("commands"), "0.1", "--bogus"]);
      assert.equal(run.code, 2);
      assert.match(run.stderr.toString(), /^file-daemon: Unknown option '--bogus' \(see file-daemon run --help\) \[BAD_OPTION\]\n$/);
    });

    it("submit --help documents the exit statuses, and help submit shows the same", async () => {
      const run = await runCli(["submit", "--help"]);
      assert.equal(run.code, 0);
      const text = run.stdout.toString();
      for (const line of [/0-255 +the command's own exit status/, /128\+N +signal N ended the command/, /124 +the command ran past --timeout/, /125 +file-daemon itself failed/]) assert.match(text, line);
      assert.deepEqual((await runCli(["help", "submit"])).stdout, run.stdout);
    });
  });

  describe("--follow, --cwd, --env, --stdin (issue #13)", () => {
    beforeEach(serve);

    it("--follow prints each line as it comes, to stdout or stderr, and exits with the command's status", async () => {
      const run = await submit("--follow", "--", "seq 20000; echo oops >&2; exit 7");
      assert.equal(run.code, 7);
      assert.equal(run.stdout.toString(), `${Array.from({ length: 20_000 }, (_, i) => i + 1).join("\n")}\n`);
      assert.equal(run.stderr.toString(), "oops\n");
    });

    it("--follow prints a cut long line back whole, and a last line without newline as it was", async () => {
      const run = await submit("-f", "--", "head -c 20000 /dev/zero | tr '\\0' x; echo; printf end");
      assert.equal(run.stdout.toString(), `${"x".repeat(20_000)}\nend\n`);
    });

    it("--cwd (relative to where it is run), --env NAME=VALUE (repeatable) and --stdin FILE or -", async () => {
      const input = tmp.file("input");
      writeFileSync(input, "from a file");
      const run = await submit("--output", "--cwd", tmp.path, "--env", "A=1", "--env", "B=two=2", "--stdin", input, "--", 'pwd; echo "$A $B"; cat');
      assert.equal(run.code, 0, run.stderr.toString());
      assert.equal(run.stdout.toString(), `${realpathSync(tmp.path)}\n1 two=2\nfrom a file`);
      const piped = await runCli(["submit", "-c", tmp.file("commands"), "-r", tmp.file("results"), "-s", "0.1", "--output", "--stdin", "-", "--", "wc -c"], 20_000, Buffer.alloc(5000, 1));
      assert.equal(piped.stdout.toString().trim(), "5000");
    });

    it("bad values: 125 and a message naming the option; nothing runs", async () => {
      const marker = tmp.file("ran");
      const cases: [string[], RegExp][] = [
        [["--env", "NOEQUALS"], /--env expects NAME=VALUE, got 'NOEQUALS'/],
        [["--env", "1BAD=x"], /env has the name "1BAD"/],
        [["--cwd", tmp.file("missing")], /the working directory .*missing does not exist/],
        [["--stdin", tmp.file("no-such-input")], /--stdin .*no-such-input: cannot read it/],
        [["--follow", "--output"], /--follow prints the output as it comes and --output once it has ended: use one of them/],
      ];
      for (const [options, message] of cases) {
        const run = await submit(...options, "--", `touch '${marker}'`);
        assert.equal(run.code, 125, options.join(" "));
        assert.match(run.stderr.toString(), message);
      }
      assert.equal(existsSync(marker), false);
    });
  });
});
