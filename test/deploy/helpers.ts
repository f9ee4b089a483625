// Shared by the deploy tests: the committed overlays and a scratch copy of deploy/ to render into.
import fs from 'node:fs';
import path from 'node:path';
import { tmpDir } from '../helpers.js';
import { repoRoot } from '../../src/config/index.js';

export const ROOT = repoRoot();
export const IMAGE = 'ghcr.io/onelora/onelora:0.1.0';

/** The committed overlays and the `deploy render` call that makes each (the paper's two LLaMA recipes, docs/architecture.md#the-method). */
export const OVERLAYS = [
  { dir: 'deploy/overlays/16gpu', config: 'presets/llama2-7b-metamath.yaml', workers: 16, micro: 4 },
  { dir: 'deploy/overlays/64gpu', config: 'presets/llama2-13b-metamath.yaml', workers: 64, micro: 2 },
] as const;

/** A temp dir holding deploy/base, so an overlay rendered at TMP/deploy/overlays/X finds ../../base. */
export function scratchDeploy(): string {
  const tmp = tmpDir('deploy');
  fs.cpSync(path.join(ROOT, 'deploy', 'base'), path.join(tmp, 'deploy', 'base'), { recursive: true });
  return tmp;
}

/** Every file under dir, relative, '/'-separated, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'));
  }
  return out.sort();
}
