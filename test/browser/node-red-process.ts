import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";

export const REPO = path.resolve(__dirname, "..", "..", "..");

/** Which Node-RED runs: NR_PKG=node-red-5 picks Node-RED 5 (installed under that alias). */
export const NR_PKG = process.env.NR_PKG || "node-red";

export interface NodeRed {
  readonly url: string;
  readonly version: string;
  readonly child: ChildProcess;
  /** Everything Node-RED printed so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after `ms`; resolves once it has exited. */
  stop(ms?: number): Promise<void>;
}

/** A TCP port nobody listens on right now (on 127.0.0.1). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/**
 * Starts the devDependency's red.js as a child process, with this package loaded from the repo
 * folder (`nodesDir`), state in `userDir`, bound to 127.0.0.1 on a free port, telemetry and tours
 * off, run by `node` (default: this Node.js), with this process's environment and `env` over it.
 * Resolves once the editor answers HTTP; rejects if Node-RED exits first or after `ms`.
 */
export async function startNodeRed(userDir: string, ms = 30_000, node = process.execPath, env: NodeJS.ProcessEnv = {}, settingsFile?: string): Promise<NodeRed> {
  const load = createRequire(path.join(REPO, "package.json"));
  const red = load.resolve(`${NR_PKG}/red.js`);
  const version = (load(`${NR_PKG}/package.json`) as { version: string }).version;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const child = spawn(node, [red,
    "--userDir", userDir,
    "--port", String(port),
    "--define", "uiHost=127.0.0.1",
    "--define", `nodesDir=${REPO}`,
    "--define", "flowFile=flows.json",
    "--define", "telemetry.enabled=false",
    "--define", "editorTheme.tours=false",
    ...(settingsFile === undefined ? [] : ["--settings", settingsFile]),
  ], { cwd: userDir, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const gone = () => child.exitCode !== null || child.signalCode !== null;

  const stop = async (stopMs = 15_000): Promise<void> => {
    if (gone()) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), stopMs);
    await exited;
    clearTimeout(timer);
  };

  const deadline = performance.now() + ms;
  for (;;) {
    if (gone()) throw new Error(`Node-RED ${version} exited (${child.exitCode ?? child.signalCode}) before serving:\n${output}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false);
    if (ok) break;
    if (performance.now() > deadline) {
      await stop();
      throw new Error(`Node-RED ${version} did not serve ${url} within ${ms} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { url, version, child, output: () => output, stop };
}
