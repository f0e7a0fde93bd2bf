import { readFileSync } from "node:fs";
import { FileDaemonError } from "../protocol/errors";

export interface UserEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/** `user` (a name or a uid) in /etc/passwd; BAD_OPTION when there is no such user. */
export function lookupUser(user: string): UserEntry {
  let passwd: string;
  try {
    passwd = readFileSync("/etc/passwd", "utf8");
  } catch (err) {
    throw new FileDaemonError("BAD_OPTION", `--user ${user}: cannot read /etc/passwd (${(err as Error).message})`);
  }
  const entry = passwd
    .split("\n")
    .map((line) => line.split(":"))
    .find((fields) => fields.length >= 6 && (fields[0] === user || fields[2] === user));
  if (entry === undefined) throw new FileDaemonError("BAD_OPTION", `--user ${user}: no such user in /etc/passwd`);
  const [name = user, , uid = "", gid = "", , home = "/"] = entry;
  return { name, uid: Number(uid), gid: Number(gid), home: home === "" ? "/" : home };
}

/**
 * Switches a daemon started as root to `user` (name or uid), with that user's groups, before
 * it serves anything, and checks that root cannot be regained. HOME, USER and LOGNAME follow,
 * so commands do not write into root's home.
 */
export function dropPrivileges(user: string): UserEntry {
  if (process.getuid?.() !== 0) {
    throw new FileDaemonError("BAD_OPTION", `--user ${user} needs the daemon to be started as root; start it as ${user} instead`);
  }
  const entry = lookupUser(user);
  try {
    (process as { initgroups?: (user: string, group: number) => void }).initgroups?.(entry.name, entry.gid);
    process.setgid?.(entry.gid);
    process.setuid?.(entry.uid);
  } catch (err) {
    throw new FileDaemonError("BAD_OPTION", `cannot switch to user ${user}: ${(err as Error).message}`);
  }
  if (entry.uid !== 0) {
    let regained = false;
    try {
      process.setuid?.(0);
      regained = true;
    } catch {
      // Expected: the switch cannot be undone.
    }
    if (regained || process.getuid() !== entry.uid || process.geteuid?.() !== entry.uid) {
      throw new FileDaemonError("BAD_OPTION", `switching to user ${user} did not drop root; refusing to serve`);
    }
  }
  process.env.HOME = entry.home;
  process.env.USER = entry.name;
  process.env.LOGNAME = entry.name;
  return entry;
}
