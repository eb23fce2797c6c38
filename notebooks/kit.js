// The kit for these notebooks: lib/notebook as `npm run build` compiled it to out/build/, checked
// first as the bin checks it (scripts/build-guard.mjs). Its types are in kit.d.ts.
const { builtPath, checkBuild } = require('../scripts/build-guard.mjs');

const file = builtPath('lib/notebook/index.ts');
checkBuild(file);
module.exports = require(file);
