// The editor's file-daemon sidebar (a Node-RED plugin); its editor part is file-daemon-sidebar.html.
// On a Node.js older than the package needs, no endpoints: the tab says it cannot reach them.
module.exports = require("../dist/src/shared/node-version.js").nodeVersionProblem() === null ? require("../dist/src/nodes/file-daemon-sidebar/sidebar-plugin.js") : function () {};
