// The gate in front of the build. The bin, notebooks/kit.js and the npm scripts run the
// JavaScript that `npm run build` wrote to out/build/, never TypeScript compiled on the fly in a
// folder another user can write (such as $TMPDIR). Before any of it loads, this checks that the
// build is there and that nobody but you, root or the checkout's owner could have changed it.
//
// Plain JavaScript outside the build on purpose: a check loaded from the build could be swapped
// along with it. Preloaded in front of a built script, as the npm scripts do
// (`node --import ./scripts/build-guard.mjs out/build/scripts/notebooks.js`), it checks before
// node loads that script.
import { existsSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout: this file is its scripts/build-guard.mjs. */
export const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
export const BUILD_DIR = join(ROOT, 'out', 'build');
/** tsc -b rewrites or touches it on every build, so its time is the build's time. */
const BUILD_INFO = join(BUILD_DIR, 'tsconfig.build.tsbuildinfo');
/** What tsconfig.build.json compiles; scripts/*.mjs (this file, the bin) run from the sources. */
const SOURCE_DIRS = ['lib', 'scripts'];
const CONFIGS = ['tsconfig.json', 'tsconfig.build.json'];
const REBUILD = `rm -rf ${BUILD_DIR} && npm run build`;

let warned = false;

/** The build is missing or unsafe to run; the message names the project, the path and the fix. */
export class BuildError extends Error {
  name = 'BuildError';
}

/** The build's file for a module of lib/ or scripts/: lib/lab/index.ts → out/build/lib/lab/index.js. */
export function builtPath(source) {
  const rel = relative(ROOT, resolve(ROOT, source));
  if (!SOURCE_DIRS.includes(rel.split(sep)[0]) || !/\.(ts|mjs)$/.test(rel) || rel.endsWith('.d.ts')) {
    throw new BuildError(`${source} is not a module the build compiles: name a .ts or .mjs file under ${SOURCE_DIRS.join('/ or ')}/`);
  }
  if (!existsSync(join(ROOT, rel))) throw new BuildError(`${join(ROOT, rel)} does not exist`);
  return join(BUILD_DIR, rel.replace(/\.ts$/, '.js'));
}

/**
 * Check the build before importing `file` from it: the file is there, nothing on the way to it
 * or in the build can be changed by another user, and a build older than its sources is
 * reported through `warn` (once per process). Throws a BuildError that names the fix.
 */
export function checkBuild(file, { warn = (line) => process.stderr.write(`${line}\n`) } = {}) {
  if (!existsSync(BUILD_INFO)) {
    throw new BuildError(`kube-netlab is not built (${BUILD_DIR} is missing or incomplete): run \`npm run build\` in ${ROOT} once (\`npm ci\` builds too)`);
  }
  if (!existsSync(file)) {
    throw new BuildError(`kube-netlab's build has no ${file}: run \`npm run build\` in ${ROOT} to bring it up to date`);
  }
  checkOwnership();
  if (!warned) {
    const newer = newestSource(statSync(BUILD_INFO).mtimeMs);
    if (newer) {
      warned = true;
      warn(`kube-netlab: warning: ${relative(ROOT, newer)} changed after the last build, which runs without that change: run \`npm run build\``);
    }
  }
}

/** uids whose files only they or root can change: yours, root's and the checkout owner's. */
function trustedOwners() {
  return new Set([0, process.getuid(), statSync(join(ROOT, 'package.json')).uid]);
}

/** out/, out/build/ and everything under it: no links, not group- or world-writable, owned by a trusted uid. */
function checkOwnership() {
  const owners = trustedOwners();
  const check = (path) => {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) {
      throw new BuildError(`refusing to run kube-netlab's build: ${path} is a symbolic link, which the build never makes, so it may lead to code another user wrote. Fix: ${REBUILD}`);
    }
    if ((st.mode & 0o022) !== 0) {
      const who = (st.mode & 0o002) !== 0 ? 'world' : 'group';
      throw new BuildError(`refusing to run kube-netlab's build: ${path} is ${who}-writable (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}), so another user could have changed the code. `
        + `Fix: chmod -R go-w ${path} if nobody else could have written there, else ${REBUILD}`);
    }
    if (!owners.has(st.uid)) {
      throw new BuildError(`refusing to run kube-netlab's build: ${path} belongs to uid ${st.uid}, not to you (uid ${process.getuid()}), root or the checkout's owner, so another user could have changed the code. `
        + `Fix: as the checkout's owner, ${REBUILD}`);
    }
    return st;
  };
  check(dirname(BUILD_DIR));
  const walk = (dir) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (check(path).isDirectory()) walk(path);
    }
  };
  check(BUILD_DIR);
  walk(BUILD_DIR);
}

/** A source of the build (or its tsconfig) changed after `since` (ms), or undefined. */
function newestSource(since) {
  let newest;
  let newestMs = since;
  const consider = (path) => {
    const ms = statSync(path).mtimeMs;
    if (ms > newestMs) { newest = path; newestMs = ms; }
  };
  const notBuilt = join(ROOT, 'scripts');
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') || (entry.name.endsWith('.mjs') && dir !== notBuilt)) consider(path);
    }
  };
  for (const d of SOURCE_DIRS) if (existsSync(join(ROOT, d))) walk(join(ROOT, d));
  for (const c of CONFIGS) if (existsSync(join(ROOT, c))) consider(join(ROOT, c));
  return newest;
}

// Preloaded in front of a script of the build: check before node loads it.
const entry = process.argv[1] ? resolve(process.argv[1]) : '';
if (entry.startsWith(`${BUILD_DIR}${sep}`)) {
  try {
    checkBuild(entry);
  } catch (e) {
    if (!(e instanceof BuildError)) throw e;
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  }
}
