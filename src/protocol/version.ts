/** The protocol version this code speaks (PROTOCOL.md): `v` of every record and of `COMMANDS.daemon`. */
export const PROTOCOL_VERSION = 1;
