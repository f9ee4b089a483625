// Renders one `bench methods` report (report.md, bubbles.svg/.png, results.json) from the
// results.json of several runs, so that methods benchmarked by separate invocations (one process
// per method, each with its own --report DIR) share one table and one plot:
//   npx tsx scripts/bench-merge.ts OUT_DIR [--name bubbles|grid] DIR/results.json...
import { readJsonFile } from '../src/json-file.js';
import { writeReport } from '../src/bench/report.js';
import type { MethodResult } from '../src/bench/methods.js';

const args = process.argv.slice(2);
const out = args.shift();
let name = 'bubbles';
if (args[0] === '--name') { args.shift(); name = args.shift() ?? name; }
if (!out || args.length === 0) throw new Error('usage: bench-merge.ts OUT_DIR [--name NAME] RESULTS.json...');
let task = '';
const rows: MethodResult[] = [];
for (const f of args) {
  const j = readJsonFile(f) as { task: string; results: MethodResult[] };
  if (task && j.task !== task) throw new Error(`${f}: task ${j.task}, expected ${task}`);
  task = j.task;
  rows.push(...j.results);
}
console.log((await writeReport(out, name, task, rows)).join('\n'));
