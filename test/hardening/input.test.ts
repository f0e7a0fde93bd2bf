// Malformed and hostile input at the file level: what a third party may leave in the commands
// and results files, each with a defined outcome, after which the daemon keeps serving. (The
// engine's bad-input tests already cover garbage results at start-up and a commands line that
// is not UTF-8; this table adds the rest.) And the append-mode fuzz: thousands of random
// payloads reach the command as exactly one argument, byte for byte.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { submitCommand } from "../../src/client/submit";
import { Daemon } from "../../src/daemon/daemon";
import { MAX_COMMAND_BYTES } from "../../src/protocol/limits";
import { pidNamespace } from "../../src/protocol/io/liveness";
import { decodeResults } from "../../src/protocol/result-record";
import { appendArgument } from "../../src/nodes/file-daemon-exec/exec-command";
import { delay, hostilePayload, random, readOrEmpty, useTempDir, waitFor } from "./support";

const TTL_MS = 600;

/** A pid that belonged to a process which has exited and been reaped. */
function deadPid(): number {
  return Number(execFileSync("sh", ["-c", "sh -c 'echo $$'"]).toString().trim());
}

function done(id: string, pid: number | null, code = 0): string {
  const meta = { v: 1, state: "done", id, pid, pidns: pid === null ? null : pidNamespace(), status: "exited", code, signal: null, message: null, stdout: null, stderr: null, stdoutTruncated: false, stderrTruncated: false, durationMs: 1 };
  return `${code}\n${JSON.stringify(meta)}\n`;
}

interface Row {
  readonly name: string;
  /** What the third party writes: into the commands or results file (or how it replaces it). */
  readonly write: (files: { commands: string; results: string; dir: (name: string) => string }) => void;
  /** The defined outcome, checked before the daemon is asked to run the next command. */
  readonly outcome: string;
  readonly check: (ctx: { commands: string; results: string; log: string[]; dir: (name: string) => string }) => Promise<void>;
}

const cleared = (what: RegExp) => async ({ results, log }: { results: string; log: string[] }) => {
  await waitFor(`the daemon to log ${what}`, () => log.some((line) => what.test(line)), 5000);
  assert.equal(readFileSync(results, "utf8"), "");
};

const rows: Row[] = [
  {
    name: "garbage bytes in the results file",
    write: ({ results }) => writeFileSync(results, Buffer.from([0, 1, 2, 0xff, 0x0a, 0x7b, 0x22])),
    outcome: "cleared at once, logged",
    check: cleared(/cleared unreadable content/),
  },
  {
    name: "a results file truncated in its JSON line, line 1 empty",
    write: ({ results }) => writeFileSync(results, '\n{"v":1,"state":"runn'),
    outcome: "garbage: cleared at once",
    check: cleared(/cleared unreadable content/),
  },
  {
    name: "a results file truncated after a return code (looks seed-style)",
    write: ({ results }) => writeFileSync(results, '0\n{"v":1,"state":"do'),
    outcome: `a seed-style result: kept for a seed-style reader, cleared after the result TTL (${TTL_MS} ms here; 10 min by default)`,
    check: async ({ results, log }) => {
      await delay(TTL_MS / 3);
      assert.equal(readFileSync(results, "utf8"), '0\n{"v":1,"state":"do', "kept for now");
      await cleared(/cleared a result nobody collected/)({ results, log });
    },
  },
  {
    name: "a results line for a command nobody sent, from a submitter that is gone",
    write: ({ results }) => writeFileSync(results, done("nobody-sent-this", deadPid(), 3)),
    outcome: "cleared at once (its submitter's pid is gone)",
    check: cleared(/cleared a result nobody collected/),
  },
  {
    name: "a results line for a command nobody sent, naming a live process",
    write: ({ results }) => writeFileSync(results, done("nobody-sent-this-either", 1, 3)),
    outcome: "kept (its submitter may still collect it), cleared after the TTL",
    check: async ({ results, log }) => {
      await delay(TTL_MS / 3);
      assert.equal(decodeResults(readFileSync(results)).kind, "done", "kept for now");
      await cleared(/cleared a result nobody collected/)({ results, log });
    },
  },
  {
    name: "a commands file whose JSON line is truncated",
    write: ({ commands, dir }) => writeFileSync(commands, `echo legacy >> '${dir("legacy-ran")}'\n{"v":1,"id":"abc`),
    outcome: "never run (a line 2 that is present but invalid is not a seed command); removed with a log line, no result (it names no id to answer)",
    check: async ({ commands, results, log, dir }) => {
      await waitFor("the command to be removed", () => /removed a command nobody can be answered for: line 2 of the commands file is not a JSON object/.test(log.join("\n")));
      assert.equal(readFileSync(commands, "utf8"), "");
      assert.equal(readFileSync(results, "utf8"), "");
      assert.equal(readOrEmpty(dir("legacy-ran")), "", "never ran");
    },
  },
  {
    name: "binary garbage with NUL bytes in the commands file",
    write: ({ commands }) => writeFileSync(commands, Buffer.from([0x72, 0x6d, 0x00, 0x20, 0x2f, 0x0a, 0x01, 0x02])),
    outcome: "not run; removed with a log line and no result, so no channel waits for a collector that does not exist",
    check: async ({ commands, results, log }) => {
      await waitFor("the removal", () => /removed a command nobody can be answered for/.test(log.join("\n")));
      assert.equal(readFileSync(commands, "utf8"), "");
      assert.equal(readFileSync(results, "utf8"), "");
    },
  },
  {
    name: "a commands line longer than 64 KiB",
    write: ({ commands, dir }) => writeFileSync(commands, `touch '${dir("long-ran")}' #${"x".repeat(MAX_COMMAND_BYTES)}\n`),
    outcome: "refused (the limit), not run",
    check: async ({ results, dir }) => {
      await waitFor("the refusal", () => readFileSync(results, "utf8").includes('"refused"'));
      assert.match(readFileSync(results, "utf8"), /the limit is 65536 bytes/);
      assert.equal(existsSync(dir("long-ran")), false);
      writeFileSync(results, "");
    },
  },
  {
    name: "a 3 MiB commands file",
    write: ({ commands, dir }) => writeFileSync(commands, `touch '${dir("huge-ran")}'\n${"y".repeat(3 * 1024 * 1024)}`),
    outcome: "replaced by an empty file without being read, logged, not run",
    check: async ({ commands, log, dir }) => {
      await waitFor("the daemon to replace it", () => log.some((line) => /commands is 3\d{6} bytes long, more than any record can be.*replaced it with an empty file without reading it/.test(line)));
      assert.equal(readFileSync(commands, "utf8"), "");
      assert.equal(existsSync(dir("huge-ran")), false);
    },
  },
  {
    name: "a FIFO in place of the commands file",
    write: ({ commands }) => {
      execFileSync("mkfifo", ["-m", "600", `${commands}.fifo`]);
      renameSync(`${commands}.fifo`, commands);
    },
    outcome: "replaced without being opened (opening a FIFO would hang the daemon), logged",
    check: async ({ commands, log }) => {
      await waitFor("the daemon to replace it", () => log.some((line) => /commands is not a regular file; replaced it with an empty file without reading it/.test(line)));
      assert.equal(readFileSync(commands, "utf8"), "");
    },
  },
  {
    name: "a commands file with a blank line 2, a third line and CRLF line ends",
    write: ({ commands, dir }) => writeFileSync(commands, `echo crlf >> '${dir("crlf-ran")}'\r\n\r\nthird line ignored\r\n`),
    outcome: "the \\r is dropped, line 3 ignored, run once as a seed-style command",
    check: async ({ results, log, dir }) => {
      await waitFor("the command to run", () => readOrEmpty(dir("crlf-ran")) === "crlf\n");
      await waitFor("its result", () => readFileSync(results, "utf8").startsWith("0\n"));
      await cleared(/cleared a result nobody collected/)({ results, log });
    },
  },
];

describe("hardening: malformed files from a third party", function () {
  this.timeout(60_000);
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });
  const tmp = useTempDir();

  it(`each of ${rows.length} kinds gets its defined outcome, and the daemon serves the next command`, async () => {
    const commands = tmp.file("commands");
    const results = tmp.file("results");
    const log: string[] = [];
    daemon = await Daemon.start({ commands, results, sleepTime: 0.1, resultTtlMs: TTL_MS, log: { info: (m) => log.push(m), error: (m) => log.push(m) } });
    for (const [index, row] of rows.entries()) {
      log.length = 0;
      try {
        row.write({ commands, results, dir: tmp.file });
        await row.check({ commands, results, log, dir: tmp.file });
        assert.equal((await submitCommand(`exit ${index}`, commands, results, 0.1)).code, index, "the daemon keeps serving");
      } catch (err) {
        (err as Error).message = `${row.name} (${row.outcome}): ${(err as Error).message}\nlog: ${log.join("\n")}`;
        throw err;
      }
    }
  });
});

describe("hardening: append-mode fuzz", function () {
  this.timeout(60_000);
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });
  const tmp = useTempDir();
  const COUNT = 3000;
  const SEED = 0x5eed_0004;

  const shells = ["/bin/sh", "/bin/bash"].filter((shell) => existsSync(shell));
  for (const shell of shells) {
    it(`${COUNT} random payloads under ${shell} (${realShell(shell)}): each reaches the command as exactly one argument, byte for byte`, async () => {
      const commands = tmp.file("commands");
      const results = tmp.file("results");
      const pwned = tmp.file("PWNED");
      daemon = await Daemon.start({ commands, results, sleepTime: 0.1, shell, captureLimit: 4 * 1024 * 1024 });
      const next = random(SEED);
      const payloads = Array.from({ length: COUNT }, () => hostilePayload(next).replaceAll("PWNED", pwned));
      // The exact quoting the node uses, many payloads per command: printf '%s\0' prints each
      // argument followed by a NUL, so a payload split in two shows as an extra NUL.
      const batches: { start: number; command: string }[] = [];
      let current: string[] = [];
      let start = 0;
      payloads.forEach((payload, i) => {
        const part = appendArgument("printf '%s\\0'", payload);
        if (current.length > 0 && Buffer.byteLength(current.join("; ")) + Buffer.byteLength(part) + 2 > MAX_COMMAND_BYTES - 64) {
          batches.push({ start, command: current.join("; ") });
          current = [];
          start = i;
        }
        current.push(part);
      });
      batches.push({ start, command: current.join("; ") });
      let checked = 0;
      for (const batch of batches) {
        const result = await submitCommand(batch.command, commands, results, 0.1, { capture: true });
        assert.equal(result.code, 0, result.stderr?.toString());
        const args = (result.stdout ?? Buffer.alloc(0)).toString("utf8").split("\0");
        assert.equal(args.pop(), "", "the output ends with a NUL");
        const expected = payloads.slice(batch.start, batch.start + args.length);
        for (let i = 0; i < expected.length; i++) {
          if (args[i] !== expected[i]) assert.fail(`payload #${batch.start + i} (seed ${SEED}) arrived as ${JSON.stringify(args[i])}, expected ${JSON.stringify(expected[i])}`);
        }
        checked += args.length;
        assert.equal(Buffer.from(args.join("\0")).equals(Buffer.from(expected.join("\0"))), true, "byte for byte");
      }
      assert.equal(checked, COUNT, `all ${COUNT} payloads came back, one argument each (${batches.length} commands)`);
      assert.equal(existsSync(pwned), false, "no payload ran anything");
    });
  }
});

function realShell(shell: string): string {
  try {
    return execFileSync("readlink", ["-f", shell]).toString().trim();
  } catch {
    return shell;
  }
}
