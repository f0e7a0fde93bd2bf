import path from "node:path";
import { channelCount, checkPath, DEFAULT_SLEEP_TIME, sleepTimeMs } from "../../shared/settings";
import { FileDaemonError } from "../../protocol/errors";
import { Allowlist } from "../../shared/allowlist";
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
  /**
   * Both paths were left empty: the files are `commands` and `results` in this directory, which
   * must be made (or found private) before anything touches them (ensureDefaultDirectory).
   * Null when the config node names its files.
   */
  readonly defaultDirectory: string | null;
  readonly sleepTime: number;
  readonly channels: number;
  readonly mode: "managed" | "external";
  readonly allowlist: Allowlist | null;
}

/**
 * Checks a config node's properties; throws FileDaemonError BAD_OPTION naming the bad one.
 * Both file paths empty means the default directory, which `defaultDirectory` resolves (only
 * then: a config node that names its files never depends on it). Config nodes saved before the
 * default existed always name both files, so empty paths need no migration.
 */
export function parseDaemonSettings(def: FileDaemonDef, defaultDirectory: () => string): DaemonSettings {
  const files = filesOf(def, defaultDirectory);
  const { commandsFile, resultsFile } = files;
  if (commandsFile === resultsFile) throw new FileDaemonError("BAD_OPTION", "the commands and results files must be different files");
  const sleepTime = isUnset(def.sleepTime) ? DEFAULT_SLEEP_TIME : sleepTimeMs(def.sleepTime) / 1000;
  const channels = isUnset(def.channels) ? 1 : channelCount(def.channels);
  const mode = def.mode ?? "managed";
  if (mode !== "managed" && mode !== "external") throw new FileDaemonError("BAD_OPTION", `mode must be "managed" or "external", got ${JSON.stringify(mode)}`);
  if (def.allowlist !== undefined && def.allowlist !== null && typeof def.allowlist !== "string") throw new FileDaemonError("BAD_OPTION", "the allowlist must be text: one pattern per line");
  return { ...files, sleepTime, channels, mode, allowlist: Allowlist.parse(def.allowlist) };
}

/** The two files: as named, or both in the default directory when both are left empty. */
function filesOf(def: FileDaemonDef, defaultDirectory: () => string): Pick<DaemonSettings, "commandsFile" | "resultsFile" | "defaultDirectory"> {
  const noCommands = isUnset(def.commandsFile) || (typeof def.commandsFile === "string" && def.commandsFile.trim() === "");
  const noResults = isUnset(def.resultsFile) || (typeof def.resultsFile === "string" && def.resultsFile.trim() === "");
  if (noCommands && noResults) {
    const dir = defaultDirectory();
    return { commandsFile: path.join(dir, "commands"), resultsFile: path.join(dir, "results"), defaultDirectory: dir };
  }
  if (noCommands || noResults) {
    throw new FileDaemonError("BAD_OPTION", `the ${noCommands ? "commands" : "results"} file path is empty: give both files, or leave both empty to use the default directory`);
  }
  return { commandsFile: path.resolve(checkPath(def.commandsFile, "commands")), resultsFile: path.resolve(checkPath(def.resultsFile, "results")), defaultDirectory: null };
}

function isUnset(value: unknown): boolean {
  return value === undefined || value === null || value === "";
}
