// Re-renders committed `bench methods` reports (docs/bench/*/) with the parameter count of
// src/peft/count.ts, from their results.json, without rerunning the benchmarks (hours on 2 cores).
// Reports written before that count was shared added the new task head twice (the trainer counted
// it inside `trainable`, the bench added `head` again): each row's old figure must equal
// adapter + 2 × head, or the script stops. Timings, metrics and memory are kept as measured.
//   npx tsx scripts/bench-recount.ts docs/bench/vit [docs/bench/dit …]
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '../src/backend/select.js';
import { loadPreset } from '../src/config/index.js';
import { Dataset } from '../src/data/arrow-file.js';
import { readJsonFile } from '../src/json-file.js';
import { describeModel } from '../src/models/registry.js';
import { countTrainable } from '../src/peft/count.js';
import { BENCH_TASKS, type BenchTask, type MethodResult } from '../src/bench/methods.js';
import { writeReport } from '../src/bench/report.js';
import { methodWithRank } from '../src/train/method.js';

async function recount(dir: string): Promise<string[]> {
  const j = readJsonFile(path.join(dir, 'results.json')) as { task: BenchTask; results: MethodResult[] };
  const cfg = loadPreset(BENCH_TASKS[j.task].preset);
  const train = Dataset.open(cfg.data.train);
  const numLabels = train.info.classes?.length;
  train.close();
  const desc = await describeModel(cfg.model.path ?? (cfg.model.preset as string), { numLabels });
  const rows = j.results.map((r) => {
    const c = countTrainable(desc, methodWithRank(r.method, cfg.rank), { targets: cfg.targets });
    const old = r.trainable;
    if (r.head === undefined && old !== c.trainable + 2 * c.head) {
      throw new Error(`${dir}: ${r.method} counted ${old}, expected ${c.trainable} + 2 × ${c.head} from the old double count`);
    }
    return { ...r, trainable: c.trainable, head: c.head };
  });
  const md = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
  // Notes (failed methods) sit between the title and the table; results.json does not hold them.
  const notes = md.slice(md.indexOf('\n\n') + 2, md.indexOf('## '));
  const name = fs.existsSync(path.join(dir, 'grid.svg')) ? 'grid' : 'bubbles';
  return writeReport(dir, name, j.task, rows, notes);
}

const dirs = process.argv.slice(2);
// Describing a DiT directory builds its embedders' tables.
await initBackend('wasm');
if (dirs.length === 0) throw new Error('usage: bench-recount.ts DIR...');
for (const d of dirs) console.log((await recount(d)).join('\n'));
