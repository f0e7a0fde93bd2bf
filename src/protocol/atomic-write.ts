import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";

/** File mode for everything the protocol creates: owner-only unless the user widens it. */
export const DEFAULT_FILE_MODE = 0o600;

/**
 * Replaces `file` with `data` in one step (temp file + rename), so a reader never sees a
 * half-written file even when two writers race (see PROTOCOL.md, "double lock holders").
 */
export async function writeFileAtomic(file: string, data: string | Buffer, mode = DEFAULT_FILE_MODE): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await fsp.writeFile(temp, data, { mode });
    await fsp.rename(temp, file);
  } catch (err) {
    await fsp.rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** Reads a file; a missing file reads as empty (the protocol treats both as "nothing there"). */
export async function readFileOrEmpty(file: string): Promise<Buffer> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return Buffer.alloc(0);
    throw err;
  }
}
