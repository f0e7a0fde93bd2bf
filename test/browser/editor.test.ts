import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Browser, Locator, Page } from "playwright-core";
import { stopLiveDaemon } from "../../src/supervisor/daemon-process";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { daemonFiles } from "../../src/protocol/paths";
import { launchChromium } from "./chromium";
import { reportFailure } from "./failure-report";
import { REPO, startNodeRed, type NodeRed } from "./node-red-process";

// The real editor in headless Chromium, against a real Node-RED (4, or 5 with NR_PKG=node-red-5)
// that loads this package from the repo folder. Every step waits for what a user would see:
// palette entries, dialogs, validation marks and their messages, notifications, node status,
// debug messages. Screenshots go to test-output/screenshots/; UPDATE_DOCS_SCREENSHOT=1 also
// copies the deployed flow with its debug output to docs/images/editor-test.png.

const STEP_MS = 30_000;
const WAIT_MS = 20_000;
const SHOTS = path.join(REPO, "test-output", "screenshots");
const DOCS_SHOT = path.join(REPO, "docs", "images", "editor-test.png");
const PACKAGE = "@file-daemon/node-red";
const EXAMPLE = "01 - Run a command";
const EXEC_ICON = `icons/${PACKAGE}/file-daemon-exec.svg`;
const CONFIG_ICON = `icons/${PACKAGE}/file-daemon.svg`;

describe(`editor in Chromium (${process.env.NR_PKG || "node-red"})`, function () {
  this.timeout(STEP_MS);
  this.bail(true); // each step builds on the one before

  let userDir = "";
  let daemonDir = "";
  /** Node-RED's XDG_RUNTIME_DIR: the example's default directory is in it, not in this machine's /dev/shm. */
  let runtimeDir = "";
  let nodeRed: NodeRed | undefined;
  let editorUrl = "";
  let browser: Browser | undefined;
  let page: Page;
  let shotPrefix = "";
  let commands = "";
  let results = "";
  /** Status of every response for one of our icons, by path ("icons/@file-daemon/..."). */
  const iconStatus = new Map<string, number>();

  const shot = async (name: string): Promise<string> => {
    mkdirSync(SHOTS, { recursive: true });
    const file = path.join(SHOTS, `${shotPrefix}-${name}.png`);
    await page.screenshot({ path: file });
    return file;
  };
  /** A node on the canvas, found by the label it shows. */
  const canvasNode = (label: string): Locator =>
    page.locator("#red-ui-workspace-chart g.red-ui-flow-node-group", {
      has: page.locator("text.red-ui-flow-node-label-text", { hasText: new RegExp(`^${label}$`) }),
    });
  const statusText = (node: Locator): Locator => node.locator("text.red-ui-flow-node-status-label");
  /**
   * Hovers an input marked invalid until the editor's tooltip shows `expected`, takes screenshot
   * `name` of it, and moves the mouse away again.
   */
  const showValidationMessage = async (input: string, expected: RegExp, name: string): Promise<void> => {
    await page.locator(`${input}.input-error`).waitFor({ state: "visible" });
    await page.mouse.move(5, 5); // from outside, so that hovering enters the field
    await page.locator(input).hover();
    await page.locator(".red-ui-popover:visible", { hasText: expected }).waitFor({ state: "visible" });
    await shot(name);
    await page.mouse.move(5, 5);
  };
  const setField = async (input: string, value: string): Promise<void> => {
    await page.fill(input, value);
    await page.press(input, "Tab"); // change event: the editor validates the field
  };

  before(async function () {
    this.timeout(2 * STEP_MS);
    userDir = mkdtempSync(path.join(os.tmpdir(), "file-daemon-editor-"));
    daemonDir = mkdtempSync(path.join(os.tmpdir(), "file-daemon-editor-daemon-")); // mode 0700
    commands = path.join(daemonDir, "commands");
    results = path.join(daemonDir, "results");
    runtimeDir = mkdtempSync(path.join(os.tmpdir(), "file-daemon-editor-xdg-")); // mode 0700
    nodeRed = await startNodeRed(userDir, STEP_MS, process.execPath, { XDG_RUNTIME_DIR: runtimeDir });
    editorUrl = nodeRed.url;
    shotPrefix = `nr${nodeRed.version.split(".")[0]}`;
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    context.setDefaultTimeout(WAIT_MS);
    // The editor asks catalogue.nodered.org for the palette manager; nothing leaves this machine.
    await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort());
    page = await context.newPage();
    page.on("response", (response) => {
      const at = response.url().indexOf(`icons/${PACKAGE}/`);
      if (at !== -1) iconStatus.set(response.url().slice(at), response.status());
    });
  });

  afterEach(async function () {
    await reportFailure(this.currentTest, browser === undefined ? null : shot, nodeRed);
  });

  after(async function () {
    this.timeout(60_000);
    await browser?.close().catch(() => undefined);
    await nodeRed?.stop();
    // A managed daemon outlives Node-RED by design: stop the ones the deployed flow ran, but only
    // on this test's own files (never someone's daemon on other files).
    const flows = (() => {
      try {
        return JSON.parse(readFileSync(path.join(userDir, "flows.json"), "utf8")) as Record<string, unknown>[];
      } catch {
        return [];
      }
    })();
    for (const n of flows) {
      if (n.type !== "file-daemon" || typeof n.commandsFile !== "string" || typeof n.resultsFile !== "string") continue;
      if (!n.commandsFile.startsWith(daemonDir + path.sep)) {
        console.log(`      left alone: the deployed flow used ${n.commandsFile} (not this test's directory)`);
        continue;
      }
      await stopLiveDaemon(daemonFiles(n.commandsFile, n.resultsFile));
    }
    for (const dir of [userDir, daemonDir, runtimeDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("shows shell exec in the palette with its label and icon", async () => {
    await page.goto(editorUrl, { timeout: STEP_MS - 2_000 });
    const entry = page.locator('.red-ui-palette-node[data-palette-type="file-daemon-exec"]');
    await entry.waitFor({ state: "visible", timeout: STEP_MS - 2_000 }); // the editor's first load is the slow part
    assert.equal(await entry.getAttribute("data-palette-label"), "shell exec");
    assert.equal((await entry.locator(".red-ui-palette-label").innerText()).replace(/\s+/g, " ").trim(), "shell exec");
    assert.equal(await entry.locator(".red-ui-palette-icon-container").getAttribute("data-palette-icon"), EXEC_ICON);
    await entry.scrollIntoViewIfNeeded();
    // The browser fetched the icon for the palette entry, and it decodes as an image.
    await waitUntil(`the palette to load ${EXEC_ICON}`, () => iconStatus.has(EXEC_ICON));
    assert.equal(iconStatus.get(EXEC_ICON), 200);
    for (const icon of [EXEC_ICON, CONFIG_ICON]) {
      const size = await page.evaluate(imageSize, icon);
      assert.ok(size.width > 0 && size.height > 0, `${icon} does not load as an image: ${JSON.stringify(size)}`);
    }
    await shot("01-palette");
  });

  it("lists both node types and the sidebar plugin of the package in Manage palette", async () => {
    await page.click("#red-ui-header-button-sidemenu");
    await page.click("#menu-item-edit-palette");
    const header = page.locator(".red-ui-palette-module-header", {
      has: page.locator(".red-ui-palette-module-name", { hasText: new RegExp(`^${PACKAGE}$`) }),
    });
    await header.waitFor({ state: "visible" });
    const version = (JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")) as { version: string }).version;
    assert.equal((await header.locator(".red-ui-palette-module-version").innerText()).trim(), version);
    const types = page.locator(".red-ui-editableList-item-content", { has: header }).locator(".red-ui-palette-module-type-node");
    // The dialog is still sliding in: a click that lands before its handlers are bound does
    // nothing (seen on a loaded CI machine), so click again until the list opens.
    for (let attempt = 1; ; attempt++) {
      await header.locator(".red-ui-palette-module-set-button", { hasText: "2 nodes" }).click();
      try {
        await types.nth(2).waitFor({ state: "visible", timeout: 5000 });
        break;
      } catch (err) {
        if (attempt === 3) throw err;
      }
    }
    assert.deepEqual((await types.allInnerTexts()).map((t) => t.trim()).sort(), ["file-daemon", "file-daemon-exec", "file-daemon-sidebar"]);
    await shot("02-manage-palette");
    await page.click(".red-ui-tray-toolbar #node-dialog-ok"); // Close
    await page.locator("#red-ui-settings-tab-palette").waitFor({ state: "hidden" });
  });

  it("drops shell exec from the palette onto the canvas, marked invalid until it has a daemon", async () => {
    const entry = page.locator('.red-ui-palette-node[data-palette-type="file-daemon-exec"]');
    await entry.scrollIntoViewIfNeeded();
    const from = await entry.boundingBox();
    const chart = await page.locator("#red-ui-workspace-chart").boundingBox();
    assert.ok(from && chart);
    await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
    await page.mouse.down();
    await page.mouse.move(chart.x + 400, chart.y + 400, { steps: 12 });
    await page.mouse.move(chart.x + 420, chart.y + 410, { steps: 4 });
    await page.mouse.up();
    const dropped = canvasNode("shell exec");
    await dropped.waitFor({ state: "visible" });
    // The editor sets the canvas icon once the image has loaded.
    await waitUntil("the dropped node's icon", async () => (await iconOf(dropped)) === EXEC_ICON);
    // The red triangle: a shell exec node without a daemon config node is invalid.
    await dropped.locator("g.red-ui-flow-node-error:not(.hide)").waitFor({ state: "attached" });
    await shot("03-dropped-node");
    await page.keyboard.press("Delete"); // the dropped node is selected
    await dropped.waitFor({ state: "detached" });
  });

  it(`imports "${EXAMPLE}" from Import > Examples > ${PACKAGE}`, async () => {
    // Node-RED puts an import's first node (the comment) where the mouse last was on the canvas,
    // and the nodes hang on the mouse until a click puts them down: point at a spot that leaves
    // the inject buttons clear of the palette, below where the "Imported" notification shows.
    const chart = await page.locator("#red-ui-workspace-chart").boundingBox();
    assert.ok(chart);
    const at = { x: chart.x + 330, y: chart.y + 160 };
    await page.mouse.move(at.x, at.y, { steps: 4 });
    await page.click("#red-ui-header-button-sidemenu");
    await page.click("#menu-item-import");
    await page.click("#red-ui-tab-red-ui-clipboard-dialog-import-tab-examples a");
    const tree = page.locator("#red-ui-clipboard-dialog-import-tab-examples");
    await tree.locator(".red-ui-treeList-label-text", { hasText: new RegExp(`^${PACKAGE}$`) }).click();
    const examples = tree.locator(".red-ui-treeList-label-text", { hasText: /^\d\d - / });
    await examples.first().waitFor({ state: "visible" });
    const listed = (await examples.allInnerTexts()).map((t) => t.trim());
    assert.ok(listed.includes(EXAMPLE), `examples listed: ${listed.join(", ")}`);
    await tree.locator(".red-ui-treeList-label-text", { hasText: new RegExp(`^${EXAMPLE}$`) }).click();
    await shot("04-import-examples");
    await page.click("#red-ui-clipboard-dialog-ok"); // Import
    await page.locator("#red-ui-clipboard-dialog").waitFor({ state: "hidden" });
    await page.locator(".red-ui-notification", { hasText: "Imported" }).first().waitFor({ state: "visible" });
    await page.mouse.move(at.x, at.y, { steps: 4 });
    await page.mouse.click(at.x, at.y);
    await page.mouse.click(chart.x + 40, chart.y + chart.height - 90); // empty canvas, left of the flow, below it
    for (const label of ["uptime", "exit 3", "shell exec", "exit code"]) await canvasNode(label).waitFor({ state: "visible" });
    await shot("05-imported");
  });

  it("validates the shell exec dialog: timeout -1 is refused, 5 is accepted", async () => {
    await canvasNode("shell exec").locator("rect.red-ui-flow-node").dblclick();
    await page.locator("#node-input-timeout").waitFor({ state: "visible" });
    assert.equal((await page.locator("#node-input-daemon option:checked").innerText()).trim(), "example daemon");
    await setField("#node-input-timeout", "-1");
    await showValidationMessage("#node-input-timeout", /^a number of seconds from 0 \(none\) to 2147483$/, "06-exec-dialog-invalid-timeout");
    await setField("#node-input-timeout", "5");
    await page.locator("#node-input-timeout:not(.input-error)").waitFor({ state: "visible" });
  });

  it("validates the config node dialog: the example's empty paths show the default directory; a relative path, or one path alone, is refused; private temp paths are accepted", async () => {
    await page.click("#node-input-btn-daemon-edit"); // the pencil beside Daemon
    await page.locator("#node-config-input-commandsFile").waitFor({ state: "visible" });
    // The example names no files: they go in the default directory, which the placeholders show.
    const defaultDir = path.join(runtimeDir, "file-daemon");
    for (const [input, name] of [["#node-config-input-commandsFile", "commands"], ["#node-config-input-resultsFile", "results"]] as const) {
      assert.equal(await page.inputValue(input), "");
      assert.equal(await page.getAttribute(input, "placeholder"), `default: ${defaultDir}/${name}`);
      await page.locator(`${input}:not(.input-error)`).waitFor({ state: "visible" });
    }
    await shot("07-config-dialog-default-directory");
    await setField("#node-config-input-commandsFile", "file-daemon/commands");
    await showValidationMessage("#node-config-input-commandsFile", /^use an absolute path \(starting with \/\)/, "07-config-dialog-relative-path");
    await setField("#node-config-input-commandsFile", commands);
    await page.locator("#node-config-input-commandsFile:not(.input-error)").waitFor({ state: "visible" });
    await showValidationMessage("#node-config-input-resultsFile", /^give both files, or leave both empty for the default directory$/, "07-config-dialog-one-path");
    await setField("#node-config-input-resultsFile", results);
    await page.locator("#node-config-input-resultsFile:not(.input-error)").waitFor({ state: "visible" });
    await page.click("#node-config-dialog-ok"); // Update
    await page.locator("#node-config-input-commandsFile").waitFor({ state: "detached" });
    await page.click("#node-dialog-ok"); // Done
    await page.locator("#node-input-timeout").waitFor({ state: "detached" });
    await canvasNode("shell exec").locator("g.red-ui-flow-node-error.hide").waitFor({ state: "attached" });
  });

  it("deploys, and the deployed flow has the values saved in the dialogs", async () => {
    await page.click("#red-ui-header-button-deploy");
    await page.locator(".red-ui-notification", { hasText: "Successfully deployed" }).waitFor({ state: "visible" });
    await page.locator("#red-ui-header-button-deploy.disabled").waitFor({ state: "attached" });
    const response = await page.request.get(new URL("flows", editorUrl).href);
    assert.equal(response.status(), 200);
    const flows = (await response.json()) as Record<string, unknown>[];
    const [exec, ...moreExec] = flows.filter((n) => n.type === "file-daemon-exec");
    const [config, ...moreConfig] = flows.filter((n) => n.type === "file-daemon");
    assert.ok(exec && config && moreExec.length === 0 && moreConfig.length === 0, `deployed: ${JSON.stringify(flows)}`);
    assert.equal(Number(exec.timeout), 5);
    assert.equal(exec.daemon, config.id);
    assert.equal(config.commandsFile, commands);
    assert.equal(config.resultsFile, results);
    assert.equal(config.mode, "managed");
  });

  it("shows the managed daemon running under the shell exec node", async () => {
    const status = statusText(canvasNode("shell exec"));
    await waitUntil('"daemon running" under shell exec', async () => (await status.textContent()) === "daemon running");
    const info = readLiveDaemon(daemonFiles(commands, results));
    assert.ok(info !== null, "no live daemon publishes itself beside the commands file");
    await shot("08-deployed-daemon-running");
  });

  it("runs the inject buttons' commands: the debug sidebar shows exit codes 3 and 0", async () => {
    // Node-RED 5 shows the debug messages panel from the start; Node-RED 4 has it behind a tab.
    const debugList = page.locator(".red-ui-debug-content-list");
    if (!(await debugList.isVisible())) await page.click("#red-ui-tab-debug-link-button");
    await debugList.waitFor({ state: "visible" });
    const payloads = page.locator(".red-ui-debug-msg .red-ui-debug-msg-payload");
    assert.equal(await payloads.count(), 0);

    const shellExec = statusText(canvasNode("shell exec"));
    const debugNode = statusText(canvasNode("exit code"));
    for (const [inject, code] of [["exit 3", "3"], ["uptime", "0"]] as const) {
      await canvasNode(inject).locator(".red-ui-flow-node-button rect.red-ui-flow-node-button-button").click();
      await page.locator(".red-ui-debug-msg", { has: page.locator(".red-ui-debug-msg-payload", { hasText: new RegExp(`^${code}$`) }) }).waitFor({ state: "visible" });
      // Under the nodes: the exec node's last exit code, the debug node's last payload.
      await waitUntil(`"exit ${code}" under shell exec`, async () => (await shellExec.textContent()) === `exit ${code}`);
      await waitUntil(`"${code}" under the debug node`, async () => (await debugNode.textContent()) === code);
    }
    assert.deepEqual((await payloads.allInnerTexts()).map((t) => t.trim()), ["3", "0"]);
    const names = await page.locator(".red-ui-debug-msg .red-ui-debug-msg-name").allInnerTexts();
    assert.ok(names.length === 2 && names.every((n) => n.includes("exit code")), `debug messages from: ${names.join(", ")}`);
    // For the picture: nothing selected, the notifications gone.
    const chart = await page.locator("#red-ui-workspace-chart").boundingBox();
    assert.ok(chart);
    await page.mouse.click(chart.x + 40, chart.y + chart.height - 90); // empty canvas, left of the flow, below it
    await page.locator("#red-ui-workspace-chart .red-ui-flow-node-selected").first().waitFor({ state: "detached" });
    await page.locator(".red-ui-notification").first().waitFor({ state: "detached" });
    const file = await shot("09-debug-exit-codes");
    if (process.env.UPDATE_DOCS_SCREENSHOT) {
      copyFileSync(file, DOCS_SHOT);
      console.log(`      copied to ${DOCS_SHOT}`);
    }
  });
});

/** The icon a canvas node shows (the href of its <image>), or null before it has one. */
async function iconOf(node: Locator): Promise<string | null> {
  const image = node.locator("image.red-ui-flow-node-icon");
  if ((await image.count()) === 0) return null;
  return image.evaluate((el) => el.getAttributeNS("http://www.w3.org/1999/xlink", "href") ?? el.getAttribute("href"));
}

/** Polls until `check` holds (20 ms steps), failing after WAIT_MS with `what`. */
async function waitUntil(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = performance.now() + WAIT_MS;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Runs in the page: loads `src` as an image and resolves to its natural size (0 when it fails). */
function imageSize(src: string): Promise<{ width: number; height: number; error?: string }> {
  return new Promise((resolve) => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const img = new (globalThis as any).Image();
    img.onload = () => resolve({ width: img.naturalWidth, height: img.naturalHeight });
    img.onerror = () => resolve({ width: 0, height: 0, error: "load failed" });
    img.src = src;
  });
}
