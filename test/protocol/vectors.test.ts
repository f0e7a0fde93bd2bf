// The protocol test vectors (docs/protocol-vectors.json, issue 11) against the TypeScript
// functions they name, and the same file read by the Python client's unittest
// (test/python/test_vectors.py), run from here so that `npm test` covers both parties.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { FAILURE_CODES } from "../../src/protocol/outcome-codes";
import { decodeCommands } from "../../src/protocol/command-record";
import { decodeDaemonInfo, type PublishedInfo } from "../../src/protocol/daemon-info";
import { checkServes } from "../../src/protocol/io/live-daemon";
import { decodeKillRequest } from "../../src/protocol/kill-request";
import { daemonFiles } from "../../src/protocol/paths";
import { decodeResults, returnCodeLine, type ResultStatus } from "../../src/protocol/result-record";
import { anchorOf, coversSince, decodeTrace, wasTaken, type TraceAnchor } from "../../src/protocol/taken-trace";
import { look, take, type ChannelView, type Writes } from "../../src/protocol/transitions";
import { packageRoot } from "../../src/shared/package-root";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Contents = { text: string } | { base64: string };
interface Case {
  readonly name: string;
  readonly description: string;
  readonly expected: Json;
  readonly [key: string]: Json | undefined;
}
interface Group {
  readonly name: string;
  readonly description: string;
  readonly parties: readonly string[];
  readonly cases: readonly Case[];
}

const VECTORS = path.join(packageRoot(), "docs", "protocol-vectors.json");
const PYTHON = process.env.PYTHON ?? "python3";
const groups = (JSON.parse(readFileSync(VECTORS, "utf8")) as { groups: Group[] }).groups;

function group(name: string): Group {
  const found = groups.find((g) => g.name === name);
  if (found === undefined) throw new Error(`no group ${name} in ${VECTORS}`);
  return found;
}

function bytes(contents: Json | undefined): Buffer {
  const c = contents as Contents;
  return "base64" in c ? Buffer.from(c.base64, "base64") : Buffer.from(c.text, "utf8");
}

function obj(value: Json | undefined): Record<string, Json> {
  return value as Record<string, Json>;
}

/** Runs `check` for every case of group `name`. */
function eachCase(name: string, check: (c: Case) => void): void {
  const g = group(name);
  describe(`${g.name} (${g.cases.length} cases; parties: ${g.parties.join(", ")})`, () => {
    it("is checked by TypeScript", () => assert.ok(g.parties.includes("ts")));
    for (const c of g.cases) it(`${c.name}: ${c.description}`, () => check(c));
  });
}

function view(state: Json | undefined): ChannelView {
  const s = obj(state);
  return { commands: decodeCommands(bytes(s.commands)), results: decodeResults(bytes(s.results)), trace: decodeTrace(bytes(s.trace)) };
}

/** Compares the writes of a decision with their summary in the vectors. */
function checkWrites(writes: Writes, expected: Record<string, Json>, read: ChannelView): void {
  assert.deepEqual(Object.keys(writes).sort(), Object.keys(expected).sort(), "which files are written");
  if (expected.commands !== undefined) assert.equal(writes.commands, expected.commands);
  if (expected.results !== undefined) {
    if (expected.results === "") assert.equal(writes.results, "");
    else {
      const want = obj(expected.results);
      const got = decodeResults(Buffer.from(writes.results ?? "", "utf8"));
      assert.equal(got.kind, want.state);
      assert.ok(got.kind === "running" || got.kind === "done");
      if (want.id !== undefined) assert.equal(got.id, want.id);
      if (want.id_prefix !== undefined) assert.ok(got.id.startsWith(want.id_prefix as string), got.id);
      if (got.kind === "running") {
        assert.equal(got.run, want.run);
        assert.equal(got.daemon, want.daemon);
      } else {
        assert.equal(got.status, want.status);
        if (want.message_contains !== undefined) assert.ok(got.message?.includes(want.message_contains as string), got.message ?? "null");
      }
    }
  }
  if (expected.trace !== undefined) {
    const want = obj(expected.trace);
    const trace = writes.trace;
    assert.ok(trace !== undefined);
    if (want.epoch === "new") assert.notEqual(trace.epoch, read.trace?.epoch, "a new epoch");
    else assert.equal(trace.epoch, want.epoch);
    assert.match(trace.epoch, /^[0-9a-f]{16}$/);
    assert.equal(trace.entries.length, want.length);
    const [seq, id] = want.last as [number, string];
    const last = trace.entries.at(-1);
    assert.equal(last?.seq, seq);
    assert.ok(last.id.startsWith(id), `last entry ${last.id} (want ${id})`);
    if (want.first !== undefined) assert.deepEqual([trace.entries[0]?.seq, trace.entries[0]?.id], want.first);
  }
}

describe("protocol vectors (docs/protocol-vectors.json)", () => {
  it("names a function, a description and parties for every group, a name and a description for every case", () => {
    for (const g of groups) {
      assert.ok(g.description && g.parties.length > 0 && (g as unknown as { functions: unknown }).functions, g.name);
      const names = new Set<string>();
      for (const c of g.cases) {
        assert.ok(c.name && c.description, `${g.name}: ${c.name}`);
        assert.ok(!names.has(c.name), `${g.name}: ${c.name} twice`);
        names.add(c.name);
      }
    }
  });

  eachCase("decodeCommands", (c) => {
    const want = obj(c.expected);
    const got = decodeCommands(bytes(c.contents));
    assert.equal(got.kind, want.kind);
    if (got.kind === "pending") {
      const r = got.record;
      if (want.legacy === true) assert.ok(r.id.startsWith(want.id_prefix as string) && r.id.length > (want.id_prefix as string).length, r.id);
      else assert.equal(r.id, want.id);
      assert.deepEqual(
        { command: r.command, legacy: r.legacy, pid: r.pid, pidns: r.pidns, timeoutMs: r.timeoutMs, capture: r.capture },
        { command: want.command, legacy: want.legacy, pid: want.pid, pidns: want.pidns, timeoutMs: want.timeoutMs, capture: want.capture },
      );
    } else if (got.kind === "refusable") {
      assert.deepEqual({ ...got.sender }, { id: want.id, pid: want.pid, pidns: want.pidns });
      assert.ok(got.reason.includes(want.reason_contains as string), `reason: ${got.reason}`);
    } else if (got.kind === "unattributable") {
      assert.ok(got.reason.includes(want.reason_contains as string), `reason: ${got.reason}`);
    }
  });

  eachCase("decodeResults", (c) => {
    const want = obj(c.expected);
    const got = decodeResults(bytes(c.contents));
    assert.equal(got.kind, want.kind);
    if (got.kind === "running") {
      assert.deepEqual({ id: got.id, pid: got.pid, pidns: got.pidns, daemon: got.daemon, run: got.run }, { id: want.id, pid: want.pid, pidns: want.pidns, daemon: want.daemon, run: want.run });
    } else if (got.kind === "done") {
      const fields = (r: Record<string, unknown>) => ({
        id: r.id,
        pid: r.pid,
        pidns: r.pidns,
        status: r.status,
        code: r.code,
        signal: r.signal,
        message: r.message,
        stdoutTruncated: r.stdoutTruncated,
        stderrTruncated: r.stderrTruncated,
        durationMs: r.durationMs,
      });
      assert.deepEqual(fields(got as unknown as Record<string, unknown>), fields(want));
      assert.equal(got.stdout?.toString("base64") ?? null, want.stdout_base64 ?? null);
      assert.equal(got.stderr?.toString("base64") ?? null, want.stderr_base64 ?? null);
    } else if (got.kind === "foreign") {
      assert.equal(got.code, want.code);
    }
  });

  eachCase("FAILURE_CODES", (c) => {
    assert.equal(FAILURE_CODES[c.status as ResultStatus] ?? null, c.expected);
  });

  eachCase("returnCodeLine", (c) => {
    // returnCodeLine reads only code and signal; the status says which situation the case is.
    assert.equal(returnCodeLineOf(c), c.expected);
  });

  eachCase("decodeTrace", (c) => {
    const got = decodeTrace(bytes(c.contents));
    const want = c.expected === null ? null : obj(c.expected);
    assert.deepEqual(got === null ? null : { epoch: got.epoch, entries: got.entries.map((e) => [e.seq, e.id]) }, want);
    const anchor = anchorOf(got);
    if (want === null) assert.equal(anchor, null);
    else assert.deepEqual(anchor, { epoch: want.epoch, seq: (want.entries as [number, string][]).at(-1)?.[0] ?? 0 });
  });

  eachCase("coversSince", (c) => {
    assert.equal(coversSince(decodeTrace(bytes(c.contents)), c.anchor as unknown as TraceAnchor | null), c.expected);
  });

  eachCase("wasTaken", (c) => {
    assert.equal(wasTaken(decodeTrace(bytes(c.contents)), c.id as string), c.expected);
  });

  eachCase("decodeKillRequest", (c) => {
    const got = decodeKillRequest(bytes(c.contents).toString("utf8"));
    assert.deepEqual(got === null ? null : { ...got }, c.expected);
  });

  eachCase("decodeDaemonInfo", (c) => {
    const got = decodeDaemonInfo(bytes(c.contents).toString("utf8"));
    assert.deepEqual(got === null ? null : { ...got }, c.expected);
  });

  eachCase("servesFiles", (c) => {
    const info = { ...obj(c.info), pid: 1, startTime: null, channels: 1, sleepTime: 0.5, stale: 10_000, version: "x", startedAt: "" } as unknown as PublishedInfo;
    const files = obj(c.files);
    const got = checkServes(info, daemonFiles(files.commands as string, files.results as string));
    assert.equal(got?.code ?? null, c.expected);
  });

  eachCase("take", (c) => {
    const ctx = obj(c.context);
    const read = view(c.state);
    const decision = take(read, {
      runToken: ctx.runToken as string,
      daemonPid: ctx.daemonPid as number,
      mayClear: () => ctx.mayClear as boolean,
      refusal: () => ctx.refusal as string | null,
    });
    const want = obj(c.expected);
    assert.equal(decision.kind, want.kind);
    if (decision.kind === "start") {
      if (want.id !== undefined) assert.equal(decision.record.id, want.id);
      else assert.ok(decision.record.id.startsWith(want.id_prefix as string));
    }
    checkWrites(decision.writes, obj(want.writes), read);
  });

  eachCase("look", (c) => {
    const ctx = obj(c.context);
    const read = view(c.state);
    const decision = look(read, {
      id: ctx.id as string,
      anchor: ctx.anchor as unknown as TraceAnchor | null,
      seenRunning: ctx.seenRunning as boolean,
      aborted: ctx.aborted as boolean,
      daemonAlive: () => ctx.daemonAlive as boolean,
      daemonExpected: () => ctx.daemonExpected as boolean,
    });
    const want = obj(c.expected);
    assert.equal(decision.kind, want.kind);
    if (decision.kind === "collect") assert.equal(decision.done.status, want.status);
    if (decision.kind === "wait") assert.equal(decision.state, want.state);
    if (decision.kind === "withdraw") assert.equal(decision.because, want.because);
    if (decision.kind === "unknown") assert.equal(decision.taken, want.taken);
    checkWrites("writes" in decision ? decision.writes : {}, obj(want.writes), read);
  });

  describe("the Python client (test/python/test_vectors.py)", () => {
    it("passes the same vectors (python3 -m unittest)", function () {
      this.timeout(60_000);
      const run = spawnSync(PYTHON, ["-m", "unittest", "-v", "test_vectors"], { cwd: path.join(packageRoot(), "test", "python"), encoding: "utf8" });
      assert.equal(run.error, undefined, `cannot run ${PYTHON}: ${run.error?.message}`);
      assert.equal(run.status, 0, `python3 -m unittest test_vectors failed:\n${run.stderr}`);
      assert.match(run.stderr, /\nOK/);
    });
  });
});

/** Line 1 of the done record a case describes. */
function returnCodeLineOf(c: Case): number {
  return returnCodeLine({ code: c.code as number | null, signal: c.signal as string | null });
}
