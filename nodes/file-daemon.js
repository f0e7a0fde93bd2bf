// Node-RED wants each node's .js, .html, icons/ and locales/ side by side; TypeScript compiles to dist/.
// On a Node.js older than the package needs, a stand-in that says so (loads nothing that needs it).
module.exports = require("../dist/src/nodes/unsupported-node.js").unsupportedNodeType("file-daemon") || require("../dist/src/nodes/file-daemon/file-daemon.js");
