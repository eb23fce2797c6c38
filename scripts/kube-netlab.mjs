#!/usr/bin/env node
// Entry point for `npx kube-netlab`: runs the CLI as `npm run build` compiled it to out/build/
// (`npm ci` builds), once build-guard.mjs has checked that nobody else could have changed it.
import { pathToFileURL } from 'node:url';
import { BuildError, builtPath, checkBuild } from './build-guard.mjs';

const cli = builtPath('scripts/cli.ts');
try {
  checkBuild(cli);
} catch (e) {
  if (!(e instanceof BuildError)) throw e;
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
}
const { main } = await import(pathToFileURL(cli).href);
process.exitCode = await main(process.argv.slice(2));
