import { constants } from "node:os";
import { isId } from "./command-line";

/**
 * A kill request `C.kill` (PROTOCOL.md §6): one line, the running command's id, optionally
 * followed by one space and a signal name (`SIGINT`); without one the signal is SIGTERM.
 */
export interface KillRequest {
  readonly id: string;
  readonly signal: NodeJS.Signals;
}

export function isSignalName(value: unknown): value is NodeJS.Signals {
  return typeof value === "string" && /^SIG[A-Z0-9]+$/.test(value) && value in constants.signals;
}

export function encodeKillRequest(request: KillRequest): string {
  return request.signal === "SIGTERM" ? `${request.id}\n` : `${request.id} ${request.signal}\n`;
}

/** Null for anything that is not one (the daemon deletes it either way). */
export function decodeKillRequest(content: string): KillRequest | null {
  const [id, signal = "SIGTERM", ...rest] = (content.split("\n")[0] ?? "").trim().split(" ");
  if (rest.length > 0 || !isId(id) || !isSignalName(signal)) return null;
  return { id, signal };
}
