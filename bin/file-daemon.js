#!/usr/bin/env -S node --max-semi-space-size=1
"use strict";
// First the Node.js version (loads nothing else): on one too old, say so and exit 1 (submit: 125).
const tooOld = require("../dist/src/shared/node-version.js").cliNodeVersionCheck(process.argv.slice(2));
if (tooOld !== null) {
  process.exitCode = tooOld;
} else {
  require("../dist/src/cli/cli.js")
    .main(process.argv.slice(2))
    .then((code) => {
      process.exitCode = code;
    });
}
