// The progress line (src/train/metrics.ts): what it shows, and that it never wraps a terminal of the
// width it is given, dropping fields instead; the Progress display on a fake terminal.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { writeStderr } from '../../src/log.js';
import { Progress, progressLine, type ProgressView } from '../../src/train/metrics.js';

const training: ProgressView = { step: 412, start: 0, total: 1200, loss: 2.345678, lr: 1.5e-4, rate: '1234 tok/s', elapsedS: 83, etaS: 3725 };
const evaluating: ProgressView = { ...training, eval: { done: 12, total: 48 } };
const huge: ProgressView = { ...training, step: 123456, total: 1234567, rate: '123456789 samples/s', elapsedS: 360_000, etaS: 3_600_000, eval: { done: 12345, total: 123456 } };

test('the progress line shows the steps, a bar, loss, lr, rate, elapsed time < ETA (tqdm\'s style) at 120 columns', () => {
  const line = progressLine(training, 120);
  assert.match(line, /^train 412\/1200 \|█+░+\| /);
  for (const part of ['loss 2.3457', 'lr 1.50e-4', '1234 tok/s', '01:23<1:02:05']) assert.ok(line.includes(part), `${part} in '${line}'`);
});

for (const width of [120, 80, 40, 20]) {
  test(`no progress line is longer than ${width - 1} columns (a ${width}-column terminal never wraps)`, () => {
    for (const v of [training, evaluating, huge, { ...training, step: 0, loss: undefined, lr: undefined, rate: undefined, etaS: undefined }]) {
      const line = progressLine(v, width);
      assert.ok(line.length <= width - 1, `${line.length} > ${width - 1}: '${line}'`);
      assert.match(line, /^(train|eval) \d+\/\d+/, 'the count is the last thing to go');
    }
  });
}

test('fields drop before the line wraps: the rate first, then lr, loss and the bar; the times stay', () => {
  assert.match(progressLine(training, 80), /^train 412\/1200 \|[█░]{10,}\| loss 2\.3457 lr 1\.50e-4 1234 tok\/s 01:23<1:02:05$/);
  assert.match(progressLine(evaluating, 80), /^eval 12\/48 · step 412\/1200 \|[█░]{10,}\| loss 2\.3457 lr 1\.50e-4 01:23<1:02:05$/);
  assert.match(progressLine(training, 60), /^train 412\/1200 \|[█░]{10,}\| loss 2\.3457 01:23<1:02:05$/);
  assert.equal(progressLine(training, 40), 'train 412/1200 01:23<1:02:05');
  assert.match(progressLine({ ...training, step: 0, etaS: undefined }, 80), / 01:23<\?$/, 'no ETA before the first step');
});

test('a running evaluation shows "eval done/total" of its batches, with the training step', () => {
  const line = progressLine(evaluating, 100);
  assert.match(line, /^eval 12\/48 · step 412\/1200 \|█+░+\|/);
  // the bar is the evaluation's: 12 of 48 is a quarter full
  const bar = /\|(█*)(░*)\|/.exec(line) as RegExpExecArray;
  assert.equal(Math.round((4 * bar[1]!.length) / (bar[1]!.length + bar[2]!.length)), 1);
  assert.match(progressLine(evaluating, 40), /^eval 12\/48/);
});

/** A terminal of `columns` that records what is written to it. */
function fakeTerminal(columns: number): { stream: NodeJS.WriteStream; text: () => string } {
  let out = '';
  const w = new Writable({ write(chunk: Buffer, _enc, done) { out += chunk.toString(); done(); } });
  return { stream: Object.assign(w, { isTTY: true, columns }) as unknown as NodeJS.WriteStream, text: () => out };
}

/** What a terminal shows: each line's text after its last carriage return and erase. */
const visible = (raw: string): string[] => raw.replaceAll('\x1b[?25l', '').replaceAll('\x1b[?25h', '').split('\n').map((l) => l.split('\r\x1b[K').at(-1) as string);

test('Progress on a terminal: log lines print above the bar, never into it; stop() ends the line and restores the cursor', () => {
  const term = fakeTerminal(80);
  const p = new Progress(0, 10, false, term.stream);
  p.evaluating(0, 4);
  p.evaluating(2, 4);
  assert.match(visible(term.text()).at(-1) as string, /^eval 2\/4 · step 0\/10/);
  p.evaluating(4, 4);
  p.update({ step: 1, loss: 2.5, lr: 1e-3, tokens_per_s: 100, peak_bytes: 0, wall_s: 1 });
  writeStderr('info [worker] a line from a worker\n');
  p.update({ step: 2, loss: 2.4, lr: 1e-3, tokens_per_s: 100, peak_bytes: 0, wall_s: 2 });
  p.stop();
  p.stop();
  const raw = term.text();
  assert.ok(raw.startsWith('\x1b[?25l'), 'the cursor is hidden while the bar shows');
  assert.ok(raw.endsWith('\n\x1b[?25h'), 'stop() ends the bar line and shows the cursor again');
  const lines = visible(raw);
  assert.deepEqual(lines.filter((l) => l.includes('a line from a worker')), ['info [worker] a line from a worker']);
  assert.match(lines.at(-2) as string, /^train 2\/10 \|/);
  for (const l of lines) assert.ok(l.length <= 79, l);
  // after stop() the process's lines go straight to stderr again, not to the stopped bar
  const before = term.text();
  const write = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    writeStderr('after\n');
  } finally {
    process.stderr.write = write;
  }
  assert.equal(term.text(), before);
});
