/**
 * The exit statuses of `file-daemon` (README, "Command line"), one table for the CLI that
 * returns them and the supervisor that reads them. `submit` exits with its command's own
 * status instead, except for the three named here.
 */
export const EXIT = {
  OK: 0,
  /** The daemon could not start or went wrong (the reason is on stderr / in --log). */
  FAILED: 1,
  /** A mistake in the command line or its options. */
  USAGE: 2,
  /** `status`: no daemon serves the files. */
  NOT_RUNNING: 3,
  /** Another live daemon serves these files (at start, or it took them over): not a crash. */
  ALREADY_RUNNING: 4,
  /** `submit`: the command ran past its timeout (as timeout(1)). */
  TIMEOUT: 124,
  /** `submit`: file-daemon itself failed, so there is no status of the command's own. */
  SUBMIT_FAILED: 125,
} as const;
