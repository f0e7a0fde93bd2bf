// Node-RED wants each node's .js, .html, icons/ and locales/ side by side; TypeScript compiles to dist/.
module.exports = require("../dist/src/nodes/file-daemon-exec.js");
