import path from "node:path";
import { channelCount, checkPath, DEFAULT_SLEEP_TIME, sleepTimeMs } from "../../shared/settings";
import { FileDaemonError } from "../../protocol/errors";
import { Allowlist } from "./allowlist";
import type { NodeDef } from "../node-red-types";

/** A `file-daemon` config node as the editor saves it (numbers may arrive as strings). */
export interface FileDaemonDef extends NodeDef {
  readonly commandsFile?: string;
  readonly resultsFile?: string;
  readonly sleepTime?: number | string;
  readonly mode?: string;
  readonly channels?: number | string;
  /** Patterns, one per line, that every command must match (see allowlist.ts); empty = any. */
  readonly allowlist?: unknown;
}

export interface DaemonSettings {
  readonly commandsFile: string;
  readonly resultsFile: string;
  readonly sleepTime: number;
  readonly channels: number;
  readonly mode: "managed" | "external";
  readonly allowlist: Allowlist | null;
}

/** Checks a config node's properties; throws FileDaemonError BAD_OPTION naming the bad one. */
export function parseDaemonSettings(def: FileDaemonDef): DaemonSettings {
  const commandsFile = path.resolve(checkPath(def.commandsFile, "commands"));
  const resultsFile = path.resolve(checkPath(def.resultsFile, "results"));
  if (commandsFile === resultsFile) throw new FileDaemonError("BAD_OPTION", "the commands and results files must be different files");
  const sleepTime = isUnset(def.sleepTime) ? DEFAULT_SLEEP_TIME : sleepTimeMs(def.sleepTime) / 1000;
  const channels = isUnset(def.channels) ? 1 : channelCount(def.channels);
  const mode = def.mode ?? "managed";
  if (mode !== "managed" && mode !== "external") throw new FileDaemonError("BAD_OPTION", `mode must be "managed" or "external", got ${JSON.stringify(mode)}`);
  if (def.allowlist !== undefined && def.allowlist !== null && typeof def.allowlist !== "string") throw new FileDaemonError("BAD_OPTION", "the allowlist must be text: one pattern per line");
  return { commandsFile, resultsFile, sleepTime, channels, mode, allowlist: Allowlist.parse(def.allowlist) };
}

function isUnset(value: unknown): boolean {
  return value === undefined || value === null || value === "";
}
