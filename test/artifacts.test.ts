// Nothing committed records the machine it was made on: no absolute home, work or temp path in any
// tracked file (text, or the strings inside binaries: Arrow schema metadata, safetensors headers,
// PNG text chunks), and every path-like Arrow metadata value is relative. A clone elsewhere reads
// the same files the same way.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { tableFromIPC } from 'apache-arrow';

const ROOT = path.resolve(import.meta.dirname, '..');
const SELF = 'test/artifacts.test.ts';

const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' })
  .split('\0')
  .filter((f) => f !== '' && fs.existsSync(path.join(ROOT, f)));

/** Absolute POSIX paths under the usual home, work and temp roots, and Windows drive paths. */
const MACHINE_PATH = /(?<![\w.~-])\/(?:work|home|root|tmp|Users|private\/var)\/[^\0-\x20'"`)\x7f-\xff]*|(?<![\w\\])[A-Za-z]:\\[\w .-]+\\[^\0-\x20'"`)\x7f-\xff]*/g;

/**
 * Absolute paths that name no machine: inside the container image (deploy/), a repo-anchored
 * ignore pattern, and a value a test passes in to show it is ignored.
 */
const ALLOWED: Record<string, readonly string[]> = {
  '.gitignore': ['/tmp/'],
  'deploy/Dockerfile': ['/tmp/cuda-cache'],
  'deploy/base/workers.yaml': ['/tmp/cuda-cache'],
  'docs/deploy.md': ['/tmp/cuda-cache'],
  'test/config.test.ts': ['/tmp/x'],
};

void test('no committed file holds an absolute machine path', () => {
  const found: string[] = [];
  for (const file of tracked) {
    if (file === SELF) continue;
    // latin1 keeps every byte, so strings inside binary files are searched too.
    const text = fs.readFileSync(path.join(ROOT, file), 'latin1');
    for (const [hit] of text.matchAll(MACHINE_PATH)) if (!(ALLOWED[file] ?? []).includes(hit)) found.push(`${file}: ${hit}`);
  }
  assert.deepEqual(found, [], 'absolute paths of the machine that made these files');
});

void test('Arrow schema metadata names files relative to the Arrow file, never by an absolute path', () => {
  const arrows = tracked.filter((f) => f.endsWith('.arrow'));
  assert.ok(arrows.length > 0, 'the demo data is committed as Arrow files');
  for (const file of arrows) {
    const { schema } = tableFromIPC(fs.readFileSync(path.join(ROOT, file)));
    for (const [key, value] of schema.metadata) {
      assert.ok(!path.isAbsolute(value) && !/^[A-Za-z]:[\\/]/.test(value), `${file}: ${key} = ${value}`);
    }
    const tokenizer = schema.metadata.get('onelora.tokenizer');
    if (tokenizer?.startsWith('.')) {
      const dir = path.resolve(ROOT, path.dirname(file), tokenizer);
      assert.ok(fs.existsSync(path.join(dir, 'tokenizer.json')), `${file}: onelora.tokenizer ${tokenizer} is no tokenizer directory in this repo`);
    }
  }
});
