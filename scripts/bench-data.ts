// Prints the data-path figures quoted in docs/data.md: `node --import tsx scripts/bench-data.ts`.
import { benchData } from '../src/bench/data.js';

process.stdout.write(JSON.stringify(await benchData({ rows: 4000, seconds: 3 }), null, 2) + '\n');
