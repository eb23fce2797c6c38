import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { projectPath } from '../../lib/project/index.ts';

const CONFIG = projectPath('scripts', 'container', 'jupyter_notebook_config.py');

// Loads the image's Jupyter configuration with OUT pointed at `out` and runs its save hook on `saved`.
function saveHook(out: string, saved: string): void {
  const script = [
    'import sys',
    'class C:',
    '    class FileContentsManager: pass',
    'ns = {"c": C()}',
    'exec(open(sys.argv[1]).read(), ns)',
    'ns["OUT"] = sys.argv[2]',
    'C.FileContentsManager.post_save_hook({"type": "notebook"}, sys.argv[3], None)',
  ].join('\n');
  execFileSync('python3', ['-c', script, CONFIG, out, saved], { stdio: 'pipe' });
}

describe("the image's Jupyter save hook", () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('copies a saved notebook to the out folder, and leaves one saved through a link to that folder alone', () => {
    dir = mkdtempSync(join(tmpdir(), 'kn-jupyter-'));
    const out = join(dir, 'out-notebooks');
    mkdirSync(join(dir, 'project'));
    writeFileSync(join(dir, 'project', 'a.ipynb'), '{"a":1}');
    saveHook(out, join(dir, 'project', 'a.ipynb'));
    expect(readFileSync(join(out, 'a.ipynb'), 'utf8')).toBe('{"a":1}');

    symlinkSync(out, join(dir, 'project', 'notebooks'));
    writeFileSync(join(out, 'b.ipynb'), '{"b":2}');
    saveHook(out, join(dir, 'project', 'notebooks', 'b.ipynb'));
    expect(readFileSync(join(out, 'b.ipynb'), 'utf8')).toBe('{"b":2}');
  });
});
