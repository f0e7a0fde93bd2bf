import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { readLiveDaemon } from "../../src/protocol/io/live-daemon";
import { daemonFiles } from "../../src/protocol/paths";
import { waitFor } from "./wait-for";

export const REPO = path.resolve(__dirname, "..", "..", "..");
export const CLI = path.join(REPO, "bin", "file-daemon.js");

export interface DaemonProcess {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

/** Starts `file-daemon RESULTS COMMANDS SLEEP ...extra` as a real child process and waits until it serves. */
export async function startDaemonProcess(commands: string, results: string, sleepTime: number, extra: string[] = [], nodeArgs: string[] = []): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [...nodeArgs, CLI, results, commands, String(sleepTime), ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  // 'close', not 'exit': at 'exit' the last of its output may still be unread in the pipes.
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  const files = daemonFiles(commands, results);
  await waitFor(`daemon pid ${child.pid} to serve ${commands} (output: ${output})`, () => readLiveDaemon(files)?.pid === child.pid || child.exitCode !== null);
  if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}: ${output}`);
  return { child, output: () => output, exited };
}

export async function stopDaemonProcess(daemon: DaemonProcess | undefined): Promise<void> {
  if (daemon === undefined || daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
  daemon.child.kill("SIGTERM");
  await daemon.exited;
}
