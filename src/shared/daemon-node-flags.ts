/**
 * Node options every start of the daemon passes (the supervisor, the bench, the systemd unit,
 * the `file-daemon` shebang). V8 reads them only at start-up: `v8.setFlagsFromString` later
 * does not shrink a heap that exists.
 *
 * `--max-semi-space-size=1` (MiB): the daemon allocates little per command, but V8 grows its
 * young generation to 16 MiB per semi-space under a burst and keeps it. Capped at 1 MiB the
 * daemon's peak after 300 commands fell from 83 to 72 MiB here at the same speed
 * (`npm run bench`, daemon row).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=1"];
