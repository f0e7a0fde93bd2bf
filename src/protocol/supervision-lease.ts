import { isPid } from "./command-line";

/**
 * The supervision lease, `COMMANDS.supervisor`: one line of JSON naming the process (Node-RED)
 * that supervises the daemon serving COMMANDS, `{"pid":4242,"startTime":"123456"}`. A managed
 * supervisor writes it when it starts or adopts a daemon, and rewrites it whenever it finds it
 * missing, unreadable or naming a process that is gone. A daemon started with
 * `--supervised GRACE` checks it about once a second and stops once no live process has been
 * named there for GRACE seconds. A missing or garbage lease names nobody: the grace applies.
 */
export interface Lease {
  readonly pid: number;
  /** /proc/PID/stat field 22, or null where /proc is missing (then only the pid is checked). */
  readonly startTime: string | null;
}

/** More than any lease can be: a larger file is read no further. */
export const MAX_LEASE_BYTES = 4096;

export function leasePath(commands: string): string {
  return `${commands}.supervisor`;
}

export function encodeLease(lease: Lease): string {
  return `${JSON.stringify(lease)}\n`;
}

/** The lease in `text`; null when it is not one. */
export function decodeLease(text: string): Lease | null {
  let value: unknown;
  try {
    value = JSON.parse(text.split("\n")[0] ?? "");
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const { pid, startTime } = value as Record<string, unknown>;
  if (!isPid(pid)) return null;
  if (startTime !== null && typeof startTime !== "string") return null;
  return { pid, startTime };
}
