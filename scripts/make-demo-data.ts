// Regenerates data/demo/ (committed): `node --import tsx scripts/make-demo-data.ts`. Deterministic:
// running it again gives byte-identical files.
import fs from 'node:fs';
import path from 'node:path';
import { DEMO_SHAPES, demoMetamath, demoShapes } from '../src/data/demo-data.js';

const root = path.resolve(import.meta.dirname, '..', 'data', 'demo');
fs.mkdirSync(path.join(root, 'shapes'), { recursive: true });
fs.writeFileSync(path.join(root, 'metamath-demo.json'), JSON.stringify(demoMetamath(2000, 0)) + '\n');
fs.writeFileSync(path.join(root, 'shapes', 'data_batch_1.bin'), demoShapes(24, 0));
fs.writeFileSync(path.join(root, 'shapes', 'test_batch.bin'), demoShapes(6, 1));
fs.writeFileSync(path.join(root, 'shapes', 'batches.meta.txt'), DEMO_SHAPES.join('\n') + '\n');
for (const f of ['metamath-demo.json', 'shapes/data_batch_1.bin', 'shapes/test_batch.bin']) {
  process.stdout.write(`${f}: ${fs.statSync(path.join(root, f)).size} bytes\n`);
}
