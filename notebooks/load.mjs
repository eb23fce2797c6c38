// Loads the project's TypeScript modules into a tslab notebook.
//
// tslab compiles each cell to CommonJS with its own TypeScript 5.0, and only files under the
// notebook's folder: `import … from '../lib/….ts'` fails there (outside rootDir, and `.ts`
// extensions need allowImportingTsExtensions). So a cell does
//   const { load } = require('./load.mjs');            // require(esm): Node >= 20.19
//   const { createLab } = await load('../lib/lab/index.ts');
// and tsx compiles the module graph as ESM, as `tsx scripts/…` does. One namespace for every
// load, so two loads share module instances (one `runner`, one class per error type).
import { register } from 'tsx/esm/api';

const api = register({ namespace: 'kube-netlab-notebooks' });

/** Import a project module by a path relative to notebooks/. */
export const load = (specifier) => api.import(specifier, import.meta.url);
