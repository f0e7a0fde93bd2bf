import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Daemon } from "../../src/daemon/daemon";
import { ALLOW_PAYLOAD_COMMAND_SETTING, DEFAULT_DIRECTORY_SETTING, KILL_SIGNALS, RESOLVED_DIRECTORY_SETTING } from "../../src/nodes/file-daemon-exec/exec-policy";
import { englishCatalog, lookup } from "./locale";
import { execFlow, helper, Inbox, lastStatus, node, NR_PATH, OUR_NODES, statuses, useTestFiles, waitFor, waitForStatus, type FlowOptions, type Msg } from "./support";

const REPO = path.resolve(__dirname, "..", "..", "..");
/** What the default inject node sends: Date.now(). */
const TIMESTAMP = 1796150858722;

function errorOf(msg: Msg): string {
  return String((msg.error as { message: unknown }).message);
}

/** Every entry Node-RED logged for the exec node, as "level: text". */
function execLog(): string[] {
  const spy = helper.log() as { getCalls(): { args: [{ type?: string; level?: number; msg?: unknown }] }[] };
  return spy
    .getCalls()
    .map((call) => call.args[0])
    .filter((entry) => entry.type === "file-daemon-exec")
    .map((entry) => `${String(entry.level)}: ${String(entry.msg)}`);
}

describe("file-daemon-exec input, msg.kill, verbose log and admin policy", function () {
  const test = useTestFiles();

  /** A daemon in this process, then a flow watching it; `settings` are settings.js for Node-RED. */
  async function deploy(options: FlowOptions = {}, settings: Record<string, unknown> | null = null): Promise<{ out: Inbox; caught: Inbox; send: (msg: Msg) => void }> {
    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1, channels: options.channels ?? 1 });
    test.onCleanup(() => daemon.stop());
    if (settings !== null) {
      helper.settings(settings);
      test.onCleanup(() => helper.settings({}));
    }
    await helper.load([...OUR_NODES], execFlow(test.current, { mode: "external", ...options }));
    await waitForStatus("exec", "daemon running");
    return { out: new Inbox("out"), caught: new Inbox("caught"), send: (msg) => node("exec").receive(msg) };
  }

  describe("msg.payload as the whole command", function () {
    /** A program named like the timestamp on the daemon's PATH: it leaves a marker if it ever runs. */
    function timestampProgram(): string {
      const bin = test.current.file("bin");
      const marker = test.current.file("timestamp-ran");
      mkdirSync(bin);
      writeFileSync(path.join(bin, String(TIMESTAMP)), `#!/bin/sh\ntouch ${marker}\n`);
      chmodSync(path.join(bin, String(TIMESTAMP)), 0o755);
      const saved = process.env.PATH;
      process.env.PATH = `${bin}:${saved ?? ""}`;
      test.onCleanup(() => void (process.env.PATH = saved));
      return marker;
    }

    it("refuses a number (the default inject node's timestamp) with a Catch error, and runs nothing", async function () {
      const marker = timestampProgram();
      const { out, caught, send } = await deploy();
      // Positive control: the same text as a string does run the program.
      send({ payload: String(TIMESTAMP) });
      assert.equal((await out.nth(0)).payload, 0);
      await waitFor("the control to leave its marker", () => existsSync(marker));
      rmSync(marker);

      send({ payload: TIMESTAMP, topic: "inject" });
      const refused = await caught.nth(0);
      assert.equal(errorOf(refused), `FileDaemonError: msg.payload is a number (${TIMESTAMP}): set a Command in the node, or send the command as a string`);
      assert.equal((refused.error as { code?: string }).code, "BAD_COMMAND");
      assert.equal(refused.topic, "inject");
      assert.equal(lastStatus("exec"), "bad input");
      send({ payload: true });
      assert.equal(errorOf(await caught.nth(1)), "FileDaemonError: msg.payload is a boolean (true): set a Command in the node, or send the command as a string");
      send({ payload: { command: "true" } });
      assert.equal(errorOf(await caught.nth(2)), "FileDaemonError: msg.payload is an object: set a Command in the node, or send the command as a string");
      // The daemon is idle and nothing ran: a later string command is the next one through.
      send({ payload: "exit 4" });
      assert.equal((await out.nth(1)).payload, 4);
      assert.equal(existsSync(marker), false, "the number must not have been run as a command");
      assert.equal(out.messages.length, 2);
    });

    it("still appends a number or boolean as one argument", async function () {
      const { out, caught, send } = await deploy({ exec: { command: "printf '<%s>'", appendPayload: true, capture: true } });
      send({ payload: TIMESTAMP });
      send({ payload: false });
      send({ payload: -1.5 });
      await out.nth(2);
      assert.deepEqual(
        out.messages.map((msg) => msg.stdout),
        [`<${TIMESTAMP}>`, "<false>", "<-1.5>"],
      );
      assert.equal(caught.messages.length, 0);
    });
  });

  describe("msg.kill", function () {
    it("with a signal name, sends that signal to the running command's process group (trap runs)", async function () {
      const marker = test.current.file("trapped");
      const started = test.current.file("started");
      const { out, caught, send } = await deploy({ exec: { capture: true } });
      send({ payload: `trap 'echo INT >> ${marker}; exit 5' INT; touch ${started}; sleep 30`, topic: "victim" });
      await waitFor("the command to start", () => existsSync(started));
      send({ kill: "SIGINT" });
      const ended = await waitFor("the killed command's message", () => caught.messages[0] ?? out.messages[0], 10_000);
      assert.equal(ended.topic, "victim");
      assert.equal(readFileSync(marker, "utf8"), "INT\n", "the command's INT trap must have run");
      assert.equal((ended.rc as { code: number }).code, 5);
    });

    it("with a signal name, a command that does not trap it dies of it: msg.rc.signal", async function () {
      const started = test.current.file("started");
      const { caught, send } = await deploy();
      send({ payload: `touch ${started}; exec sleep 30`, topic: "victim" });
      await waitFor("the command to start", () => existsSync(started));
      send({ kill: "sighup" });
      const killed = await caught.nth(0);
      assert.equal((killed.rc as { signal: string }).signal, "SIGHUP");
    });

    it("refuses an unknown signal name, naming the accepted ones, and kills nothing", async function () {
      const started = test.current.file("started");
      const { out, caught, send } = await deploy();
      send({ payload: `touch ${started}; sleep 0.8`, topic: "survivor" });
      await waitFor("the command to start", () => existsSync(started));
      send({ kill: "SIGFOO", topic: "bad kill" });
      const refused = await caught.nth(0);
      assert.equal(refused.topic, "bad kill");
      assert.equal(errorOf(refused), `FileDaemonError: msg.kill "SIGFOO" is not a signal this node sends: use one of ${KILL_SIGNALS.join(", ")} (or true for SIGTERM); nothing was killed`);
      assert.equal((refused.error as { code?: string }).code, "BAD_OPTION");
      const survivor = await out.nth(0);
      assert.equal(survivor.topic, "survivor");
      assert.equal(survivor.payload, 0, "the running command must not have been killed");
      assert.equal(caught.messages.length, 1);
    });

    it("any other truthy value kills with SIGTERM, as before", async function () {
      const started = test.current.file("started");
      const { caught, send } = await deploy();
      send({ payload: `touch ${started}; exec sleep 30`, topic: "victim" });
      await waitFor("the command to start", () => existsSync(started));
      send({ kill: 1 });
      const killed = await caught.nth(0);
      assert.equal(killed.topic, "victim");
      assert.equal((killed.rc as { signal: string }).signal, "SIGTERM");
      assert.equal(lastStatus("exec"), "killed");
    });
  });

  describe("verbose", function () {
    it("logs every command line it submits when Node-RED runs with verbose", async function () {
      const { out, send } = await deploy({ exec: { command: "printf %s", appendPayload: true } }, { verbose: true });
      send({ payload: "it's here" });
      await out.nth(0);
      assert.ok(
        execLog().some((line) => line === `40: running: printf %s "it's here"`),
        execLog().join("\n"),
      );
    });

    it("logs no command line without verbose", async function () {
      const { out, send } = await deploy();
      send({ payload: "true" });
      await out.nth(0);
      assert.equal(
        execLog().filter((line) => line.includes("running:")).length,
        0,
        execLog().join("\n"),
      );
    });
  });

  describe("admin policy in settings.js", function () {
    it(`${ALLOW_PAYLOAD_COMMAND_SETTING}: false refuses every message of a node without a Command, and runs nothing`, async function () {
      const marker = test.current.file("ran");
      const { out, caught, send } = await deploy({}, { [ALLOW_PAYLOAD_COMMAND_SETTING]: false });
      send({ payload: `touch ${marker}`, topic: "forbidden" });
      const refused = await caught.nth(0);
      assert.equal(refused.topic, "forbidden");
      assert.equal(
        errorOf(refused),
        `NotAllowedError: the administrator forbids running msg.payload as the whole command (${ALLOW_PAYLOAD_COMMAND_SETTING} in settings.js): set a Command in this node (msg.payload can be appended to it as one argument); nothing was run`,
      );
      assert.equal((refused.error as { code?: string }).code, "NOT_ALLOWED");
      assert.equal(lastStatus("exec"), "not allowed");
      send({ payload: `touch ${marker}` });
      await caught.nth(1);
      assert.equal(existsSync(marker), false);
      assert.equal(out.messages.length, 0);
      assert.ok(
        execLog().some((line) => line.startsWith("30: this node has no Command, and the administrator forbids")),
        execLog().join("\n"),
      );
    });

    it(`${ALLOW_PAYLOAD_COMMAND_SETTING}: false still runs a node with a Command, with or without the payload appended`, async function () {
      const { out, caught, send } = await deploy({ exec: { command: "printf '<%s>'", appendPayload: true, capture: true } }, { [ALLOW_PAYLOAD_COMMAND_SETTING]: false });
      send({ payload: "; touch nothing" });
      assert.equal((await out.nth(0)).stdout, "<; touch nothing>");
      assert.equal(caught.messages.length, 0);
    });

    it("a value other than true or false forbids too (a typo must not open the policy)", async function () {
      const { caught, send } = await deploy({}, { [ALLOW_PAYLOAD_COMMAND_SETTING]: "no" });
      send({ payload: "true" });
      assert.equal(((await caught.nth(0)).error as { code?: string }).code, "NOT_ALLOWED");
    });

    it("the setting names start with their node type in camelCase, as Node-RED requires, and register without a warning", async function () {
      const { normaliseNodeTypeName } = (createRequire(__filename)(NR_PATH) as { util: { normaliseNodeTypeName(type: string): string } }).util;
      assert.ok(ALLOW_PAYLOAD_COMMAND_SETTING.startsWith(normaliseNodeTypeName("file-daemon-exec")));
      assert.ok(DEFAULT_DIRECTORY_SETTING.startsWith(normaliseNodeTypeName("file-daemon")));
      assert.ok(RESOLVED_DIRECTORY_SETTING.startsWith(normaliseNodeTypeName("file-daemon")));
      await deploy();
      const spy = helper.log() as { getCalls(): { args: [{ msg?: unknown }] }[] };
      const invalid = spy.getCalls().filter((call) => /invalid property name/i.test(String(call.args[0].msg)));
      assert.deepEqual(invalid, []);
    });
  });
});

describe("file-daemon-exec status texts", function () {
  const catalog = englishCatalog();
  const sources = path.join(REPO, "src", "nodes");
  const keys = new Set<string>();
  for (const file of readdirSync(sources, { recursive: true, encoding: "utf8" }).filter((name) => name.endsWith(".ts"))) {
    for (const match of readFileSync(path.join(sources, file), "utf8").matchAll(/"(file-daemon-exec\.status\.[A-Za-z]+)"/g)) keys.add(match[1] as string);
  }

  it("every status key the code uses is in the en-US locale, at most 20 characters with its values", function () {
    assert.ok(keys.size >= 20, `found only ${keys.size} status keys`);
    const widest: Record<string, string> = { count: "100", code: "255", signal: "SIGUSR2" };
    for (const key of keys) {
      const text = lookup(catalog, key);
      assert.equal(typeof text, "string", `${key} is missing from nodes/locales/en-US/file-daemon-exec.json`);
      const shown = (text as string).replace(/__([a-z]+)__/g, (_whole, name: string) => widest[name] ?? "?");
      assert.ok(shown.length <= 20, `${key}: "${shown}" is longer than 20 characters`);
    }
  });

  it("every status text in the locale is used by the code", function () {
    const status = lookup(catalog, "file-daemon-exec.status") as Record<string, string>;
    assert.deepEqual(
      Object.keys(status)
        .map((name) => `file-daemon-exec.status.${name}`)
        .filter((key) => !keys.has(key)),
      [],
    );
  });

  const test = useTestFiles();
  it("the statuses a running node shows come from the locale (not keys)", async function () {
    const daemon = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1 });
    test.onCleanup(() => daemon.stop());
    await helper.load([...OUR_NODES], execFlow(test.current, { mode: "external" }));
    await waitForStatus("exec", "daemon running");
    node("exec").receive({ payload: "exit 3" });
    await waitForStatus("exec", "exit 3");
    const texts = statuses("exec").map((status) => status.text ?? "");
    assert.ok(texts.includes("running"), texts.join(", "));
    assert.deepEqual(
      texts.filter((text) => text.includes("file-daemon-exec.")),
      [],
    );
  });
});
