// `onelora presets`: the presets of presets/ with their one-line `description:` (presets/README.md).
import type { Command } from 'commander';
import { listPresets, parseYaml, presetFile } from '../../config/index.js';
import { readTextFile } from '../../json-file.js';
import { action, printResult } from '../run.js';

/** Each preset's name and description, read from its YAML without validating the rest. */
function presetDescriptions(): { name: string; description: string }[] {
  return listPresets().map((name) => {
    const raw = parseYaml(readTextFile(presetFile(name)), `presets/${name}.yaml`) as { description?: unknown } | null;
    return { name, description: typeof raw?.description === 'string' ? raw.description : '' };
  });
}

export function registerPresets(program: Command): void {
  program
    .command('presets')
    .description('list the presets (train/launch --preset NAME) with their descriptions')
    .option('--json', 'one JSON array on the last line')
    .action(action((o: { json?: boolean }) => {
      const rows = presetDescriptions();
      const width = Math.max(0, ...rows.map((r) => r.name.length));
      printResult(!!o.json, rows, rows.map((r) => `${r.name.padEnd(width)}  ${r.description || '(no description)'}`).join('\n'));
    }));
}
