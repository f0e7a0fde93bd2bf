import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Browser, Locator, Page } from "playwright-core";
import { stopLiveDaemon } from "../../src/supervisor/daemon-process";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { isPidAlive } from "../../src/protocol/io/liveness";
import { daemonFiles } from "../../src/protocol/paths";
import { launchChromium } from "./chromium";
import { reportFailure } from "./failure-report";
import { REPO, startNodeRed, type NodeRed } from "./node-red-process";
import { SIDEBAR_FLOW, sidebarFlow } from "../helpers/sidebar-flow";

// The file-daemon sidebar tab in the real editor (headless Chromium), against a real Node-RED
// (4, or 5 with NR_PKG=node-red-5, there in its dark theme) and the real daemon it manages.
// What a user does: open the tab from the View menu, press an inject that runs `sleep 30`, see
// it running, press Kill, see it in the recent results as killed; kill the daemon and watch the
// tab say it restarted. UPDATE_DOCS_SCREENSHOT=1 copies the tab's picture to docs/images/sidebar.png.

const STEP_MS = 30_000;
const WAIT_MS = 20_000;
const SHOTS = path.join(REPO, "test-output", "screenshots");
const DOCS_SHOT = path.join(REPO, "docs", "images", "sidebar.png");
const NR5 = process.env.NR_PKG === "node-red-5";

const CONFIG = SIDEBAR_FLOW.config;

describe(`file-daemon sidebar in Chromium (${process.env.NR_PKG || "node-red"})`, function () {
  this.timeout(STEP_MS);
  this.bail(true); // each step builds on the one before

  let userDir = "";
  let runtimeDir = "";
  let nodeRed: NodeRed | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let shotPrefix = "";
  let files = daemonFiles("/nonexistent/commands", "/nonexistent/results");

  const shot = async (name: string): Promise<string> => {
    mkdirSync(SHOTS, { recursive: true });
    const file = path.join(SHOTS, `${shotPrefix}-sidebar-${name}.png`);
    await page.screenshot({ path: file });
    return file;
  };
  const daemonBox = (): Locator => page.locator(`.file-daemon-sidebar-daemon[data-config="${CONFIG}"]`);
  const state = (): Locator => daemonBox().locator(".file-daemon-sidebar-head .file-daemon-sidebar-state");
  const runningRows = (): Locator => daemonBox().locator(".file-daemon-sidebar-running > li");
  const recentRows = (): Locator => daemonBox().locator(".file-daemon-sidebar-recent > li");
  /** The text of each part named by its class, in one item of a list. */
  const parts = async (row: Locator, ...names: string[]): Promise<string[]> => Promise.all(names.map(async (name) => (await row.locator(`.file-daemon-sidebar-${name}`).innerText()).trim()));
  const cellTexts = async (row: Locator): Promise<string[]> => (await row.locator("td").allInnerTexts()).map((text) => text.trim());
  const pressInject = async (label: string): Promise<void> => {
    const node = page.locator("#red-ui-workspace-chart g.red-ui-flow-node-group", {
      has: page.locator("text.red-ui-flow-node-label-text", { hasText: new RegExp(`^${label}$`) }),
    });
    await node.locator(".red-ui-flow-node-button rect.red-ui-flow-node-button-button").click();
  };
  const livePid = (): number | null => readLiveDaemon(files)?.pid ?? null;

  before(async function () {
    this.timeout(2 * STEP_MS);
    userDir = mkdtempSync(path.join(os.tmpdir(), "file-daemon-sidebar-"));
    runtimeDir = mkdtempSync(path.join(os.tmpdir(), "file-daemon-sidebar-xdg-")); // mode 0700
    const dir = path.join(runtimeDir, "file-daemon"); // the default directory under XDG_RUNTIME_DIR
    files = daemonFiles(path.join(dir, "commands"), path.join(dir, "results"));
    writeFileSync(path.join(userDir, "flows.json"), JSON.stringify(sidebarFlow(), null, 2));
    nodeRed = await startNodeRed(userDir, STEP_MS, process.execPath, { XDG_RUNTIME_DIR: runtimeDir });
    shotPrefix = `nr${nodeRed.version.split(".")[0]}`;
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
    context.setDefaultTimeout(WAIT_MS);
    await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort());
    // Node-RED 5's own setting (View > Theme: Dark), kept where the editor keeps it: in the browser.
    if (NR5) await context.addInitScript(() => localStorage.setItem("view-dark-theme", "dark"));
    page = await context.newPage();
  });

  afterEach(async function () {
    await reportFailure(this.currentTest, browser === undefined ? null : shot, nodeRed);
  });

  after(async function () {
    this.timeout(60_000);
    await browser?.close().catch(() => undefined);
    await nodeRed?.stop();
    await stopLiveDaemon(files); // a managed daemon outlives Node-RED by design
    for (const dir of [userDir, runtimeDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("opens the file-daemon tab from the View menu: the config node, running, with its pid, channels and features", async () => {
    await page.goto(nodeRed?.url ?? "", { timeout: STEP_MS - 2_000 });
    await page.locator('.red-ui-palette-node[data-palette-type="file-daemon-exec"]').waitFor({ state: "visible", timeout: STEP_MS - 2_000 });
    // Node-RED 5 shows Debug below the right-hand tabs: close it (its button again) to give the tab the whole height.
    if (NR5) {
      await page.click('button[data-tab-id="debug"]');
      await page.locator("#red-ui-sidebar-debug, .red-ui-debug-content").first().waitFor({ state: "hidden" });
    }
    await page.click("#red-ui-header-button-sidemenu");
    await page.hover("#menu-item-view-menu");
    await page.click("#menu-item-view-menu-file-daemon");
    await state().filter({ hasText: /^running$/ }).waitFor({ state: "visible" });
    assert.equal((await daemonBox().locator(".file-daemon-sidebar-head strong").innerText()).trim(), "pi daemon");
    const pid = livePid();
    assert.ok(pid !== null, "no live daemon on the flow's files");
    assert.equal((await daemonBox().locator(".file-daemon-sidebar-pid").innerText()).trim(), String(pid));
    assert.equal((await daemonBox().locator(".file-daemon-sidebar-channels").innerText()).trim(), "2 (0 busy, 2 free)");
    const fields = await daemonBox().locator(".file-daemon-sidebar-fields").innerText();
    assert.match(fields, /features\s+cwd, env, stdin, stream/);
    assert.match(fields, /file mode\s+0600/);
    assert.match(fields, new RegExp(`commands file\\s+${files.commands.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
    const queue = daemonBox().locator(".file-daemon-sidebar-queues tbody tr");
    assert.deepEqual(await cellTexts(queue), ["sleeper", "0", "0"]);
    await shot("01-open");
  });

  it("follows the editor's theme: readable text on the tab's background (Node-RED 5: the dark theme)", async () => {
    if (NR5) assert.equal(await page.evaluate('document.documentElement.classList.contains("nr-theme-dark")'), true, "Node-RED 5 did not switch to its dark theme");
    const { text, background } = await page.evaluate<{ text: string; background: string }>(
      '(() => { const style = getComputedStyle(document.querySelector(".file-daemon-sidebar")); return { text: style.color, background: style.backgroundColor }; })()',
    );
    // A transparent background would read as black here: the tab must paint its own.
    assert.doesNotMatch(background, /^rgba\(.*,\s*0(\.\d+)?\)$/, `the tab's background is transparent (${background})`);
    const ratio = contrast(text, background);
    assert.ok(ratio >= 4.5, `text ${text} on ${background}: contrast ${ratio.toFixed(2)} (WCAG asks ≥ 4.5)`);
    if (NR5) assert.ok(luminance(background) < 0.2, `the dark theme's background is ${background}`);
  });

  it("lists a `sleep 30` pressed from an inject as running: the command as written, its node, how long", async () => {
    await pressInject("sleep 30");
    await runningRows().first().waitFor({ state: "visible" });
    const [command, node, running] = await parts(runningRows().first(), "command", "node", "for");
    assert.equal(command, "sleep 30");
    assert.equal(node, "sleeper");
    assert.match(running ?? "", /^\d+\.\d s$/);
    await daemonBox().locator(".file-daemon-sidebar-channels", { hasText: "2 (1 busy, 1 free)" }).waitFor({ state: "visible" });
    assert.deepEqual(await cellTexts(daemonBox().locator(".file-daemon-sidebar-queues tbody tr")), ["sleeper", "0", "1"]);
    // It really runs: the time shown goes on.
    await runningRows().first().locator(".file-daemon-sidebar-for", { hasText: /^[1-9]\d*\.\d s$/ }).waitFor({ state: "visible" });
    await shot("02-running");
  });

  it("Kill ends it: gone from Running, first in Recent results as killed (SIGTERM), long before 30 s", async () => {
    const started = performance.now();
    await runningRows().first().locator("button.file-daemon-sidebar-kill").click();
    await daemonBox().locator(".file-daemon-sidebar-running").waitFor({ state: "detached" });
    await recentRows().first().waitFor({ state: "visible" });
    const [node, command, result, took] = await parts(recentRows().first(), "node", "command", "result", "took");
    assert.equal(node, "sleeper");
    assert.equal(command, "sleep 30");
    assert.equal(result, "killed (SIGTERM)");
    assert.ok(performance.now() - started < 15_000, "the kill took as long as the sleep");
    assert.match(took ?? "", /^took \d+\.\d s$/);
    await daemonBox().locator(".file-daemon-sidebar-channels", { hasText: "2 (0 busy, 2 free)" }).waitFor({ state: "visible" });
    // The exec node says the same under itself.
    const status = page.locator("#red-ui-workspace-chart g.red-ui-flow-node-group", { has: page.locator("text.red-ui-flow-node-label-text", { hasText: /^sleeper$/ }) }).locator("text.red-ui-flow-node-status-label");
    await status.filter({ hasText: /^killed$/ }).waitFor({ state: "visible" });
    await shot("03-killed");
  });

  it("a daemon killed with SIGKILL is shown restarting, then running again under a new pid", async () => {
    const before = livePid();
    assert.ok(before !== null);
    process.kill(before, "SIGKILL");
    // The supervisor restarts it within a second or so: the tab's health changes keep the steps.
    const health = daemonBox().locator(".file-daemon-sidebar-health > li");
    const death = health.filter({ has: page.locator('[data-state="restarting"]'), hasText: "SIGKILL" }).first();
    await death.waitFor({ state: "visible" });
    assert.match((await parts(death, "what"))[0] ?? "", /^the daemon exited \(killed by SIGKILL\); restarting in \d+ ms$/);
    await waitUntil("a new daemon", () => {
      const pid = livePid();
      return pid !== null && pid !== before;
    });
    const after = livePid();
    assert.ok(after !== null && !isPidAlive(before));
    await daemonBox().locator(".file-daemon-sidebar-pid", { hasText: new RegExp(`^${after}$`) }).waitFor({ state: "visible" });
    await state().filter({ hasText: /^running$/ }).waitFor({ state: "visible" });
    // Newest first: running (the new pid) above the restart.
    const states = await Promise.all((await health.locator("[data-state]").all()).map((cell) => cell.getAttribute("data-state")));
    const restarting = states.indexOf("restarting");
    assert.ok(restarting > 0 && states.slice(0, restarting).includes("running"), `health changes, newest first: ${states.join(", ")}`);
    await shot("04-restarted");
  });

  it("shows a result that exited 0 beside the killed one, and a command running (the README's picture)", async () => {
    await pressInject("say hello");
    await recentRows().filter({ hasText: "echo hello" }).first().waitFor({ state: "visible" });
    assert.deepEqual(await parts(recentRows().first(), "result", "command"), ["exit 0", "echo hello"]);
    await pressInject("sleep 30");
    await runningRows().first().waitFor({ state: "visible" });
    await page.setViewportSize({ width: 1280, height: 1000 }); // the whole tab in the picture
    const file = await shot("05-readme");
    if (process.env.UPDATE_DOCS_SCREENSHOT) {
      copyFileSync(file, NR5 ? DOCS_SHOT.replace(".png", "-dark.png") : DOCS_SHOT);
      console.log(`      copied to ${NR5 ? DOCS_SHOT.replace(".png", "-dark.png") : DOCS_SHOT}`);
    }
    await runningRows().first().locator("button.file-daemon-sidebar-kill").click();
    await daemonBox().locator(".file-daemon-sidebar-running").waitFor({ state: "detached" });
  });

  it("asks when told of a change while shown, nothing while hidden, and catches up when shown again", async () => {
    const overviews: number[] = [];
    const count = (request: { url(): string }) => {
      if (request.url().includes("/file-daemon/overview")) overviews.push(performance.now());
    };
    page.on("request", count);
    const hello = () => recentRows().filter({ hasText: "echo hello" });
    const showTab = async (id: string) => {
      await page.click("#red-ui-header-button-sidemenu");
      await page.hover("#menu-item-view-menu");
      await page.click(`#menu-item-view-menu-${id}`);
    };
    try {
      // Shown: choosing it again from the menu (Node-RED 5 hides and re-shows it) keeps it live.
      await showTab("file-daemon");
      await page.waitForTimeout(500);
      // Count the runtime's notices as the editor receives them (the tab listens to the same topic).
      await page.evaluate('window.fileDaemonNotices = 0; RED.comms.subscribe("file-daemon/changed", function () { window.fileDaemonNotices++; })');
      const before = await hello().count();
      const pressed = performance.now();
      await pressInject("say hello");
      await waitUntil("the new result listed", async () => (await hello().count()) === before + 1);
      const listedAfter = performance.now() - pressed;
      assert.ok((await page.evaluate<number>("window.fileDaemonNotices")) > 0, "no file-daemon/changed notice reached the editor");
      // The tab's own refresh is every 10 s: this quick, the notice made it ask.
      assert.ok(listedAfter < 2_000, `the result was listed ${Math.round(listedAfter)} ms after the press`);
      assert.ok(overviews.some((at) => at > pressed), "no overview request after the press");

      // Hidden: Node-RED 4 shows one tab at a time; Node-RED 5 puts Debug in a section of its own, Info in ours.
      await showTab(NR5 ? "info" : "debug");
      await page.locator(".file-daemon-sidebar").waitFor({ state: "hidden" });
      await page.waitForTimeout(1_000); // a request already under way may still finish
      const hiddenFrom = performance.now();
      await pressInject("say hello");
      await page.waitForTimeout(11_000); // longer than the tab's own refresh (10 s)
      assert.deepEqual(overviews.filter((at) => at > hiddenFrom), [], "the hidden tab asked");

      // Shown again: it asks at once and lists what happened meanwhile.
      await showTab("file-daemon");
      await waitUntil("the result made while hidden", async () => (await hello().count()) === before + 2);
    } finally {
      page.off("request", count);
    }
  });
});

/** Polls until `check` holds (20 ms steps), failing after WAIT_MS with `what`. */
async function waitUntil(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = performance.now() + WAIT_MS;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Relative luminance (WCAG 2) of a CSS rgb()/rgba() colour. */
function luminance(color: string): number {
  const [r = 0, g = 0, b = 0] = (color.match(/[\d.]+/g) ?? []).slice(0, 3).map((part) => {
    const c = Number(part) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function contrast(a: string, b: string): number {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (light + 0.05) / (dark + 0.05);
}
