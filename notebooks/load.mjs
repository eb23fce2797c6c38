// Loads the project's modules into a tslab notebook, from the build (`npm run build`; `npm ci`
// builds too).
//
// tslab compiles each cell to CommonJS with its own TypeScript 5.0, and only files under the
// notebook's folder: `import … from '../lib/….ts'` fails there (outside rootDir, and `.ts`
// extensions need allowImportingTsExtensions). So a cell does
//   const { load } = require('./load.mjs');            // require(esm): Node >= 20.19
//   const { createLab } = await load('../lib/lab/index.ts');
// and gets out/build/lib/lab/index.js, checked first as the bin checks it (build-guard.mjs).
// Node's module cache makes two loads share module instances (one `runner`, one class per error).
import { fileURLToPath, pathToFileURL } from 'node:url';
import { builtPath, checkBuild } from '../scripts/build-guard.mjs';

/** Import a project module by its source path relative to notebooks/, e.g. `../lib/lab/index.ts`. */
export async function load(specifier) {
  const file = builtPath(fileURLToPath(new URL(specifier, import.meta.url)));
  checkBuild(file);
  return import(pathToFileURL(file).href);
}
