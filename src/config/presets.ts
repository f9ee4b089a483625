// Presets: `presets/NAME.yaml` files of the repository, in the run-config format.
import fs from 'node:fs';
import path from 'node:path';
import { parseConfig, parseYaml } from './config.js';
import type { RunConfig } from './schema.js';
import { UserError } from '../errors.js';
import { installPath } from '../install.js';
import { readTextFile } from '../json-file.js';

/** The repository (package) root: the nearest directory above this file holding package.json. */
export function repoRoot(): string {
  let dir = installPath();
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('onelora: package.json not found above src/config/presets.ts');
    dir = up;
  }
  return dir;
}

function presetsDir(): string {
  return path.join(repoRoot(), 'presets');
}

export function listPresets(): string[] {
  if (!fs.existsSync(presetsDir())) return [];
  return fs.readdirSync(presetsDir()).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)).sort();
}

/** The file of preset NAME, `presets/NAME.yaml`; an unknown name is an error listing the presets. */
export function presetFile(name: string): string {
  const names = listPresets();
  if (!/^[\w.-]+$/.test(name) || !names.includes(name)) {
    throw new UserError(`--preset ${name}: no such preset (available: ${names.join(', ') || 'none'})`);
  }
  return path.join(presetsDir(), `${name}.yaml`);
}

/** `presets/NAME.yaml`; its relative paths resolve against presets/, as those of any `--config` file against its own directory (docs/config.md#paths). */
export function loadPreset(name: string, overrides: readonly string[] = []): RunConfig {
  const file = presetFile(name);
  const raw = parseYaml(readTextFile(file), `presets/${name}.yaml`);
  return parseConfig(raw, { source: `presets/${name}.yaml`, baseDir: presetsDir(), overrides });
}

