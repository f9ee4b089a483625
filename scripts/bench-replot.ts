// Redraws the committed plots of docs/bench/*/ from their results.json (bubbles.* or grid.*) or
// pca.json (pca.*), without rerunning the benchmarks; report.md and the numbers are left as they are.
//   npx tsx scripts/bench-replot.ts docs/bench/llama docs/bench/pca … [--out DIR]
import fs from 'node:fs';
import path from 'node:path';
import type { MethodResult } from '../src/bench/methods.js';
import type { PcaResult } from '../src/bench/pca.js';
import { writeBubblePlot, writePcaPlot } from '../src/bench/report.js';
import { readJsonFile } from '../src/json-file.js';

const args = process.argv.slice(2);
const at = args.indexOf('--out');
const out = at >= 0 ? args.splice(at, 2)[1] : undefined;
if (args.length === 0) throw new Error('usage: bench-replot.ts DIR... [--out DIR]');
for (const dir of args) {
  const to = out ? path.join(out, path.basename(dir)) : dir;
  if (fs.existsSync(path.join(dir, 'pca.json'))) {
    // The PCA's SVG (0.8 MB: every point of every line) is committed only where it already was.
    const hadSvg = fs.existsSync(path.join(to, 'pca.svg'));
    const files = await writePcaPlot(to, readJsonFile(path.join(dir, 'pca.json')) as PcaResult);
    if (!hadSvg && !out) fs.rmSync(path.join(to, 'pca.svg'));
    console.log(files.filter((f) => fs.existsSync(f)).join('\n'));
    continue;
  }
  const j = readJsonFile(path.join(dir, 'results.json')) as { task: string; results: MethodResult[] };
  const name = fs.existsSync(path.join(dir, 'grid.png')) ? 'grid' : 'bubbles';
  console.log((await writeBubblePlot(to, name, j.task, j.results)).join('\n'));
}
