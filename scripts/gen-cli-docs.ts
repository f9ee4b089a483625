// `npm run docs:cli`: rewrites docs/cli.md from the commander definitions.
import fs from 'node:fs';
import path from 'node:path';
import { buildProgram } from '../src/cli/main.js';
import { cliReference } from '../src/cli/reference.js';

fs.writeFileSync(path.join(import.meta.dirname, '..', 'docs', 'cli.md'), cliReference(buildProgram()));
