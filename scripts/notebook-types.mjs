// Part of `npm run build`: copies the declarations tsc emitted for lib/ into notebooks/.kit/, where
// tslab (which only reads files under the notebook's folder) finds them through notebooks/kit.d.ts.
// Types only: nothing here runs; the code comes from out/build/ through notebooks/kit.js.
import { cpSync, existsSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const from = join(ROOT, 'out', 'build', 'lib');
const to = join(ROOT, 'notebooks', '.kit', 'lib');
if (!existsSync(from)) throw new Error(`${from} is missing: run tsc first (npm run build does)`);
rmSync(join(ROOT, 'notebooks', '.kit'), { recursive: true, force: true });
cpSync(from, to, { recursive: true, filter: (p) => statSync(p).isDirectory() || p.endsWith('.d.ts') });
