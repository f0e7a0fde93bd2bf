import { FileDaemonError } from "../../protocol/errors";

/**
 * Node settings (settings.js, exported to the editor). Node-RED wants each name to start with
 * its node type in camelCase: `fileDaemonExec…` for the exec node, `fileDaemon…` for the config node.
 */
export const ALLOW_PAYLOAD_COMMAND_SETTING = "fileDaemonExecAllowPayloadCommand";
/** The admin's directory: new config nodes are pre-filled with it, and one with empty paths uses it. */
export const DEFAULT_DIRECTORY_SETTING = "fileDaemonDefaultDirectory";
/**
 * Exported by the runtime, not read from settings.js: the directory a config node with empty
 * paths uses (resolveDefaultDirectory), which the editor shows as their placeholder. An admin
 * who wants another one sets DEFAULT_DIRECTORY_SETTING.
 */
export const RESOLVED_DIRECTORY_SETTING = "fileDaemonResolvedDirectory";

/**
 * False in settings.js forbids exec nodes without a fixed command for the whole install. Unset
 * or true allows them; any other value forbids them too (a typo must not open a policy).
 */
export function payloadCommandAllowed(settings: Readonly<Record<string, unknown>>): boolean {
  const value = settings[ALLOW_PAYLOAD_COMMAND_SETTING];
  return value === undefined || value === null || value === true;
}

/** An exec node without a fixed command, where the admin forbids that (NOT_ALLOWED). */
export class PayloadCommandForbiddenError extends FileDaemonError {
  constructor() {
    super("NOT_ALLOWED", `the administrator forbids running msg.payload as the whole command (${ALLOW_PAYLOAD_COMMAND_SETTING} in settings.js): set a Command in this node (msg.payload can be appended to it as one argument); nothing was run`);
    // Shown before the message, as the allowlist's refusal (same code).
    this.name = "NotAllowedError";
  }
}

/**
 * The signals msg.kill may name: those that end a command, or that a command may trap to end
 * itself. Stop/continue signals are left out: a stopped command would never report a result.
 */
export const KILL_SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGABRT", "SIGALRM"] as const;
export type KillSignal = (typeof KILL_SIGNALS)[number];

/**
 * The signal a truthy msg.kill asks for: a name from KILL_SIGNALS (any case, "SIG" optional),
 * or SIGTERM for any other truthy value. Throws BAD_OPTION for an unknown name.
 */
export function killSignal(value: unknown): KillSignal {
  if (typeof value !== "string") return "SIGTERM";
  const upper = value.trim().toUpperCase();
  const name = upper.startsWith("SIG") ? upper : `SIG${upper}`;
  const known = KILL_SIGNALS.find((signal) => signal === name);
  if (known !== undefined) return known;
  throw new FileDaemonError("BAD_OPTION", `msg.kill ${JSON.stringify(value)} is not a signal this node sends: use one of ${KILL_SIGNALS.join(", ")} (or true for SIGTERM); nothing was killed`);
}
