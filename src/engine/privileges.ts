import { readFileSync } from "node:fs";
import { FileDaemonError } from "../protocol/errors";

/** Switches a daemon started as root to `user` (name or uid) before it serves anything. */
export function dropPrivileges(user: string): void {
  if (process.getuid?.() !== 0) {
    throw new FileDaemonError("BAD_OPTION", `--user ${user} needs the daemon to be started as root; start it as ${user} instead`);
  }
  const entry = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .map((line) => line.split(":"))
    .find((fields) => fields[0] === user || fields[2] === user);
  if (entry === undefined) throw new FileDaemonError("BAD_OPTION", `--user ${user}: no such user in /etc/passwd`);
  const [name = user, , uid = "", gid = ""] = entry;
  try {
    (process as { initgroups?: (user: string, group: number) => void }).initgroups?.(name, Number(gid));
    process.setgid?.(Number(gid));
    process.setuid?.(Number(uid));
  } catch (err) {
    throw new FileDaemonError("BAD_OPTION", `cannot switch to user ${user}: ${(err as Error).message}`);
  }
}
