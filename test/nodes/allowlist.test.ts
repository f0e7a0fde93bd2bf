// The allowlist's pattern language (table-driven), the migration of version-1 patterns (the
// runtime's and the editor's copy), and an old config node through a real Node-RED.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Daemon } from "../../src/daemon/daemon";
import { migrateAllowlist } from "../../src/nodes/file-daemon/allowlist";
import { Allowlist } from "../../src/shared/allowlist";
import { execFlow, helper, Inbox, node, OUR_NODES, useTestFiles, waitForStatus, type FlowNode, type Msg } from "./support";

type Row = readonly [pattern: string, command: string, allowed: boolean];

/** pattern (one allowlist text, may hold several lines), command, allowed? */
const ROWS: readonly Row[] = [
  // the two attacks on `cat /home/pi/logs/*`, and what it is for
  ["cat /home/pi/logs/*", "cat /home/pi/logs/../../../etc/shadow", false],
  ["cat /home/pi/logs/*", "cat /home/pi/logs/a /etc/shadow", false],
  ["cat /home/pi/logs/*", "cat /home/pi/logs/app.log", true],
  ["cat /home/pi/logs/*", "cat /home/pi/logs/2024/app.log", false],
  ["cat /home/pi/logs/*", "cat /home/pi/logs/", true],
  ["cat /home/pi/logs/*", "cat /home/pi/logs/...", true],
  // `..` in several positions
  ["cat /home/pi/logs/*", "cat /home/pi/logs/..", false],
  ["cat /home/pi/logs/*/x", "cat /home/pi/logs/../x", false],
  ["cat /home/pi/logs/*.log", "cat /home/pi/logs/..log", true],
  ["cat /home/pi/logs/*.", "cat /home/pi/logs/..", false],
  ["cat /home/pi/logs/.*", "cat /home/pi/logs/..", false],
  ["cat /home/pi/logs/?.", "cat /home/pi/logs/..", false],
  ["cat *", "cat ..", false],
  ["cd ..", "cd ..", true],
  ["cat /home/pi/logs/**", "cat /home/pi/logs/2024/05/app.log", true],
  ["cat /home/pi/logs/**", "cat /home/pi/logs/2024/../../../etc/shadow", false],
  ["cat /home/pi/logs/**", "cat /home/pi/logs/2024/..", false],
  ["cat /home/pi/logs/**", "cat /home/pi/logs/2024 /etc/shadow", false],
  ["cat /home/pi/logs/**.log", "cat /home/pi/logs/a/b.log", true],
  ["cat /home/pi/logs/**.", "cat /home/pi/logs/a/..", false],
  // `*` and `?` stay within one word and path segment
  ["cat *", "cat /etc/shadow", false],
  ["cat *", "cat notes.txt", true],
  ["cat *", "cat a b", false],
  ["cp * /backup/", "cp  /backup/", false],
  ["cp * /backup/", "cp data.db /backup/", true],
  ["exit ?", "exit 7", true],
  ["exit ?", "exit 12", false],
  ["exit ?", "exit /", false],
  ["exit ?", "exit  ", false],
  ["echo a?c", "echo a c", false],
  // spaces and tabs
  ["echo *", "  echo hi  ", true],
  ["echo *", "echo   hi", true],
  ["echo *", "echo\thi", true],
  ["echo *", "echo hi\tthere", false],
  ["echo a\\ b", "echo a b", true],
  ["echo a\\ b", "echo a  b", false],
  // shell syntax is never matched by a wildcard
  ["echo *", "echo hi;id", false],
  ["echo **", "echo hi ; id", false],
  ["echo **", "echo hi && id", false],
  ["echo **", "echo hi | tee /tmp/x", false],
  ["echo **", "echo $(id)", false],
  ["echo **", "echo `id`", false],
  ["echo **", "echo $HOME", false],
  ["echo **", "echo 'a b'", false],
  ["echo **", 'echo "a"', false],
  ["echo **", "echo a > /tmp/x", false],
  ["echo **", "echo a\\ b", false],
  ["echo **", "echo ~", false],
  ["echo **", "echo {a,b}", false],
  ["echo **", "echo *", false],
  ["echo **", "echo a\nid", false],
  ["echo **", "echo # comment", false],
  // "any further arguments": a trailing ` **`
  ["systemctl status **", "systemctl status", true],
  ["systemctl status **", "systemctl status kodi", true],
  ["systemctl status **", "systemctl status kodi --no-pager -n 20", true],
  ["systemctl status **", "systemctl status /etc/x", true],
  ["systemctl status **", "systemctl status ../x", false],
  ["systemctl status **", "systemctl status a/../b", false],
  ["systemctl status **", "systemctl statusx", false],
  ["**", "uptime -p", true],
  // exact matches and escapes
  ["/usr/bin/env true", "/usr/bin/env true", true],
  ["/usr/bin/env true", "/usr/bin/env true; id", false],
  ["/usr/bin/env true", "/usr/bin/env  true", true],
  ["printf '<%s>'", "printf '<%s>'", true],
  ["printf '<%s>'", "printf '<%s>' x", false],
  ["echo \\*", "echo *", true],
  ["echo \\*", "echo a", false],
  // comments and blank lines
  ["# cat *\n\n  \necho hi", "cat x", false],
  ["# cat *\n\n  \necho hi", "echo hi", true],
  ["\n# only comments\n", "rm -rf /", true], // no pattern at all: no allowlist (parse gives null)
  ["echo hi\r\nexit ?", "exit 3", true],
];

describe("allowlist: the pattern language", function () {
  assert.ok(ROWS.length >= 30);
  for (const [pattern, command, allowed] of ROWS) {
    it(`${JSON.stringify(pattern)} ${allowed ? "allows" : "refuses"} ${JSON.stringify(command)}`, function () {
      const list = Allowlist.parse(pattern);
      assert.equal(list === null ? true : list.allows(command), allowed);
    });
  }

  const INVALID: readonly [string, RegExp][] = [
    ["echo ***", /^allowlist line 1 "echo \*\*\*": \*\*\* means nothing/],
    ["echo hi\ncp ** /backup/", /^allowlist line 2 "cp \*\* \/backup\/": \*\* as a word of its own must be the last word/],
  ];
  for (const [text, message] of INVALID) {
    it(`refuses the invalid pattern ${JSON.stringify(text)} with BAD_OPTION`, function () {
      assert.throws(() => Allowlist.parse(text), (err: Error & { code?: string }) => err.code === "BAD_OPTION" && message.test(err.message));
    });
  }
});

/** version-1 pattern → version-2 pattern; benign commands still allowed; attacks now refused. */
const MIGRATIONS: readonly { old: string; now: string; allowed: string[]; refused: string[] }[] = [
  { old: "cat /home/pi/logs/*", now: "cat /home/pi/logs/**", allowed: ["cat /home/pi/logs/app.log", "cat /home/pi/logs/2024/app.log"], refused: ["cat /home/pi/logs/../../../etc/shadow", "cat /home/pi/logs/a /etc/shadow"] },
  { old: "cat /tmp/x/*", now: "cat /tmp/x/**", allowed: ["cat /tmp/x/a"], refused: ["cat /tmp/x/../../etc/passwd", "cat /tmp/x/.."] },
  { old: "systemctl restart *", now: "systemctl restart **", allowed: ["systemctl restart kodi", "systemctl restart kodi mpd"], refused: ["systemctl restart ../kodi", "systemctl restart kodi; id"] },
  { old: "echo *", now: "echo **", allowed: ["echo hello world", "echo a-b_c.d/e:f,g+h@i%j=k", "echo"], refused: ["echo *", "echo a/../b"] },
  { old: "*", now: "**", allowed: ["uptime", "ls -l /tmp"], refused: ["ls ../..", "uptime; id"] },
  { old: "cat /var/log/app-*.log", now: "cat /var/log/app-**.log", allowed: ["cat /var/log/app-1.log"], refused: ["cat /var/log/app-/../../x.log", "cat /var/log/app-1.log /etc/shadow.log"] },
  { old: "cat *.log", now: "cat *.log", allowed: ["cat a.log"], refused: ["cat /etc/x.log", "cat ../x.log"] },
  { old: "cp ** /backup/", now: "cp * /backup/", allowed: ["cp data.db /backup/"], refused: ["cp /etc/shadow /backup/"] },
  { old: "exit ?", now: "exit ?", allowed: ["exit 0"], refused: ["exit /"] },
  { old: "echo \\*", now: "echo \\*", allowed: ["echo *"], refused: ["echo a"] },
  { old: "ls /\\*x/*", now: "ls /\\*x/**", allowed: ["ls /*x/a"], refused: ["ls /*x/.."] },
];

/** The editor's copy of the migration, taken out of nodes/file-daemon.html. */
function editorMigration(): (text: string) => { text: string; changed: { from: string; to: string }[] } {
  const html = readFileSync(path.resolve(__dirname, "..", "..", "..", "nodes", "file-daemon.html"), "utf8");
  const source = /\/\/ migrateAllowlistV1 begin[^\n]*\n([\s\S]*?)\/\/ migrateAllowlistV1 end/.exec(html)?.[1];
  assert.ok(source, "nodes/file-daemon.html holds migrateAllowlistV1 between its markers");
  return new Function(`${source}; return migrateAllowlistV1;`)() as ReturnType<typeof editorMigration>;
}

describe("allowlist: migrating version-1 patterns", function () {
  for (const { old, now, allowed, refused } of MIGRATIONS) {
    it(`${JSON.stringify(old)} → ${JSON.stringify(now)}: ${allowed.length} benign commands still allowed, ${refused.length} refused`, function () {
      const { text, changed } = migrateAllowlist(old, 1);
      assert.equal(text, now);
      assert.deepEqual(changed, old === now ? [] : [{ from: old, to: now }]);
      const list = Allowlist.parse(text) as Allowlist;
      for (const command of allowed) assert.equal(list.allows(command), true, command);
      for (const command of refused) assert.equal(list.allows(command), false, command);
    });
  }

  it("keeps comments, blank lines, indentation and line breaks; says only what changed", function () {
    const old = "# logs\r\n  cat /tmp/x/*  \n\nexit ?\n# echo *";
    assert.deepEqual(migrateAllowlist(old, 1), { text: "# logs\r\n  cat /tmp/x/**  \n\nexit ?\n# echo *", changed: [{ from: "cat /tmp/x/*", to: "cat /tmp/x/**" }] });
  });

  it("leaves current patterns alone and refuses an unknown version", function () {
    assert.deepEqual(migrateAllowlist("echo *", 2), { text: "echo *", changed: [] });
    assert.throws(() => migrateAllowlist("echo *", 3), /allowlist version 3 is unknown/);
  });

  it("the editor's copy in nodes/file-daemon.html migrates exactly like the runtime", function () {
    const migrate = editorMigration();
    const texts = [...MIGRATIONS.map((m) => m.old), "# a\n\n  cat /tmp/x/*  \r\necho *\tx\nfoo**bar\\/*\n\t*"];
    for (const text of texts) assert.deepEqual(migrate(text), migrateAllowlist(text, 1), JSON.stringify(text));
  });
});

describe("allowlist: an old config node (no version) through Node-RED", function () {
  this.timeout(30_000);
  const test = useTestFiles();

  function errorOf(msg: Msg): { message: string; code?: string } {
    return msg.error as { message: string; code?: string };
  }

  async function deploy(daemon: Record<string, unknown>): Promise<{ out: Inbox; caught: Inbox }> {
    const running = await Daemon.start({ commands: test.current.commands, results: test.current.results, sleepTime: 0.1 });
    test.onCleanup(() => running.stop());
    const flow = execFlow(test.current, { mode: "external", exec: { capture: true } }).map((n): FlowNode => (n.id === "daemon" ? { ...n, ...daemon } : n));
    await helper.load([...OUR_NODES], flow);
    await waitForStatus("exec", "daemon running");
    return { out: new Inbox("out"), caught: new Inbox("caught") };
  }

  function warnings(id: string): string[] {
    const target = node(id);
    const spy = (target as unknown as { warn: { getCalls(): { thisValue: unknown; args: [unknown] }[] } }).warn;
    return spy
      .getCalls()
      .filter((call) => call.thisValue === target)
      .map((call) => String(call.args[0]));
  }

  it("`cat DIR/*` refuses `cat DIR/../../etc/passwd` with NOT_ALLOWED, still allows `cat DIR/a`, and warns once what it migrated", async function () {
    const dir = test.current.file("x");
    const { mkdirSync, writeFileSync } = await import("node:fs");
    mkdirSync(dir);
    writeFileSync(path.join(dir, "a"), "contents of a\n");
    const { out, caught } = await deploy({ allowlist: `# old syntax\ncat ${dir}/*` });
    const warned = warnings("daemon");
    assert.equal(warned.length, 1, warned.join("\n"));
    assert.match(warned[0] as string, new RegExp(`allowlist saved without a version: .*"cat ${dir}/\\*" → "cat ${dir}/\\*\\*"`));

    node("exec").receive({ payload: `cat ${dir}/../../etc/passwd` });
    const refused = await caught.nth(0);
    assert.equal(errorOf(refused).code, "NOT_ALLOWED");
    node("exec").receive({ payload: `cat ${dir}/a /etc/passwd` });
    assert.equal(errorOf(await caught.nth(1)).code, "NOT_ALLOWED");

    node("exec").receive({ payload: `cat ${dir}/a` });
    const allowed = await out.nth(0);
    assert.equal(allowed.payload, 0);
    assert.equal(allowed.stdout, "contents of a\n");
    assert.equal(out.messages.length, 1);
  });

  it("a config node of the current version is read as written, without a warning", async function () {
    const dir = test.current.file("x");
    const { caught } = await deploy({ allowlist: `cat ${dir}/*`, version: 2 });
    assert.deepEqual(warnings("daemon"), []);
    node("exec").receive({ payload: `cat ${dir}/sub/a` }); // `*` stays within one segment
    assert.equal(errorOf(await caught.nth(0)).code, "NOT_ALLOWED");
  });
});
