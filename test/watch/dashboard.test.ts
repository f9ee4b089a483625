// The dashboard in a real browser: a 2-worker `onelora launch` of the demo preset serves it, Debian's
// chromium (headless, through playwright-core, no browser download) opens it from the start and
// again mid-run, and the page must show one loss point per logged step, both ranks with their
// state, and a worker killed with kill -9 first lost, then restarted by the launcher. It writes the
// guide's screenshot (docs/images/dashboard.png) when ONELORA_WRITE_SCREENSHOT=1, so that running the
// tests leaves the working tree as it was. Then `onelora dashboard` serves the finished run
// (and a resumed copy of it, overlaid) from disk, and the flags' refusals exit 2.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { tmpDir } from '../helpers.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'onelora.js');
const CHROMIUM = '/usr/bin/chromium';
const SKIP = fs.existsSync(CHROMIUM) ? false : `no ${CHROMIUM} (apt-get install chromium)`;
const SHOT = process.env.ONELORA_WRITE_SCREENSHOT === '1' ? path.join(ROOT, 'docs', 'images', 'dashboard.png') : path.join(tmpDir('dashboard-shot'), 'dashboard.png');
const STEPS = 8;

let browser: BrowserContext;
const profile = tmpDir('chromium');
before(async () => {
  if (SKIP) return;
  // A fresh profile each run (the persistent context is playwright's way to name its directory).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1400, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});
after(async () => {
  await browser?.close();
  fs.rmSync(profile, { recursive: true, force: true });
});

function onelora(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcessWithoutNullStreams & { out: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ONELORA_LOG: 'info', ...env }, stdio: 'pipe' });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr.on('data', (d: Buffer) => (text += d.toString()));
  return Object.assign(child, { out: () => text });
}

const exited = (c: ChildProcessWithoutNullStreams): Promise<number | null> =>
  c.exitCode !== null ? Promise.resolve(c.exitCode) : new Promise((resolve) => c.once('exit', (code) => resolve(code)));

async function until<T>(what: string, fn: () => T | null | undefined | false | Promise<T | null | undefined | false>, ms = 240_000, log = () => ''): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${log().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const stepLines = (dir: string): number => fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l && !l.includes('"eval"')).length;
/** The loss chart's points, as its vega view holds them. */
// Run in the page: the test's tsconfig has no DOM types, so the page's globals are reached through globalThis.
const lossPoints = (page: Page): Promise<number> => page.evaluate(() => (globalThis as unknown as { onelora: { views: Map<string, { view: { data(n: string): unknown[] } }> } }).onelora.views.get('loss')?.view.data('points').length ?? 0);
const row = (page: Page, rank: number, attrs: string): Promise<unknown> => page.waitForSelector(`#workers tr[data-rank="${rank}"]${attrs}`, { timeout: 240_000 });

const output = path.join(tmpDir('dash'), 'demo');

test('launch --dashboard-port 0: live curves, both ranks, a kill -9 shown lost then restarted', { skip: SKIP, timeout: 600_000 }, async () => {
  const job = onelora(['launch', '--preset', 'demo', '--workers', '2', '--output', output, '--backend', 'wasm', '--max-steps', String(STEPS), '--dashboard-port', '0',
    '--set', 'batch.global=4', '--set', 'batch.micro=2', '--set', 'eval.every=4', '--set', 'eval.max_batches=1', '--set', 'eval.generate=false']);
  try {
    const url = (await until('the dashboard URL', () => /dashboard at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(job.out())?.[1], 120_000, job.out));
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await row(page, 0, '[data-state="running"]');
    await row(page, 1, '[data-state="running"]');
    // Two steps logged, then rank 1's process (its pid from the table) dies.
    await page.waitForFunction(`Number(document.querySelector('[data-chart="loss"] .chart')?.dataset.points ?? 0) >= 2`, null, { timeout: 240_000, polling: 100 });
    const pid = Number(await page.textContent('#workers tr[data-rank="1"] td:nth-child(3)'));
    assert.ok(pid > 0);
    process.kill(pid, 'SIGKILL');
    await row(page, 1, '[data-state="lost"]');
    await row(page, 1, '[data-state="running"][data-restarts="1"]');
    assert.match((await page.textContent('#failures')) ?? '', /rank 1/);
    // A page opened now, in the middle of the run, gets the whole story from the stream's snapshot.
    const late = await browser.newPage();
    await late.goto(url);
    await row(late, 1, '[data-state="running"][data-restarts="1"]');
    await until('the late page to hold every step', async () => (await lossPoints(late)) === stepLines(output), 30_000);
    assert.match((await late.textContent('#failures')) ?? '', /rank 1/);
    await late.close();
    assert.match((await page.textContent('#generations')) ?? '', /generation 2: 2 workers/);
    // One point per logged step (a step the kill interrupted is trained again and logged once).
    await until('the loss chart to catch up', () => stepLines(output) >= STEPS - 2, 240_000, job.out);
    await until('one loss point per step line', async () => (await lossPoints(page)) === stepLines(output), 30_000, job.out);
    const n = await lossPoints(page);
    assert.equal(n, stepLines(output));
    fs.mkdirSync(path.dirname(SHOT), { recursive: true });
    await page.screenshot({ path: SHOT, fullPage: true });
    assert.equal(await exited(job), 0, job.out());
    assert.equal(stepLines(output), STEPS);
    assert.deepEqual(errors, []);
  } finally {
    if (job.exitCode === null) job.kill('SIGINT');
  }
});

test('onelora dashboard RUN_DIR RUN_DIR --port 0: the runs from disk, overlaid with a resumed run\'s segments; Ctrl-C stops it', { skip: SKIP, timeout: 300_000 }, async () => {
  assert.ok(fs.existsSync(path.join(output, 'summary.json')), 'the launch test ran first');
  const copy = path.join(path.dirname(output), 'demo-copy');
  fs.cpSync(output, copy, { recursive: true });
  // The copy resumed for two more steps in one process: a second segment, its wall clock from 0 again.
  const resumed = onelora(['train', '--resume', copy, '--max-steps', String(STEPS + 2), '--backend', 'wasm']);
  assert.equal(await exited(resumed), 0, resumed.out());
  const server = onelora(['dashboard', output, copy, '--port', '0']);
  try {
    // The URL alone on a line of stdout.
    const url = await until('the URL line', () => /^(http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(server.out())?.[1], 120_000, server.out);
    // Loopback without a token answers only to loopback names (no DNS rebinding).
    const status = (host: string) => new Promise<number>((resolve, reject) => http.get(`${url}api/snapshot`, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject));
    assert.deepEqual([await status('evil.example'), await status('localhost')], [403, 200]);
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForSelector('#status.finished', { timeout: 60_000 });
    assert.equal(await lossPoints(page), 2 * STEPS + 2);
    const series = await page.evaluate(() => [...new Set((globalThis as unknown as { onelora: { views: Map<string, { view: { data(n: string): { series: string }[] } }> } }).onelora.views.get('loss')!.view.data('points').map((p) => p.series))]);
    assert.deepEqual(series.sort(), ['demo', 'demo-copy · segment 1', 'demo-copy · segment 2']);
    assert.equal(await page.getAttribute('[data-run="run0"] [data-checkpoints]', 'data-checkpoints'), `step-${STEPS}`);
    assert.equal(await page.isHidden('#group'), true, 'no worker table for runs read from disk');
    // Step against wall time, on a log scale: the same points.
    await page.click('#x-wall');
    await page.check('#log-scale');
    await page.waitForFunction(() => (globalThis as unknown as { onelora: { views: Map<string, { key: string }> } }).onelora.views.get('loss')!.key.includes('"log"'), null, { timeout: 30_000 });
    assert.equal(await lossPoints(page), 2 * STEPS + 2);
    await page.screenshot({ path: path.join(path.dirname(output), 'overlay.png'), fullPage: true });
    await page.close();
    server.kill('SIGINT');
    assert.equal(await exited(server), 0, server.out());
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
});

test('refusals: a taken --dashboard-port, a dashboard beyond loopback without the job token, a host without a port, a missing RUN_DIR: exit 2', { timeout: 120_000 }, async () => {
  const taken = http.createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  const port = (taken.address() as { port: number }).port;
  // All at once: each is mostly the CLI's start-up.
  const busy = onelora(['train', '--preset', 'demo', '--output', path.join(tmpDir('busy'), 'run'), '--dashboard-port', String(port)]);
  const open = onelora(['train', '--preset', 'demo', '--output', path.join(tmpDir('open'), 'run'), '--dashboard-port', '0', '--dashboard-host', '0.0.0.0'], { ONELORA_JOB_TOKEN: '' });
  const missing = onelora(['dashboard', path.join(tmpDir('none'), 'nothing')]);
  const hostOnly = onelora(['launch', '--preset', 'demo', '--workers', '2', '--output', path.join(tmpDir('host'), 'run'), '--dashboard-host', '127.0.0.1']);
  const [b, o, m, h] = await Promise.all([exited(busy), exited(open), exited(missing), exited(hostOnly)]);
  assert.equal(h, 2, hostOnly.out());
  assert.match(hostOnly.out(), /--dashboard-host 127\.0\.0\.1: give --dashboard-port too/);
  taken.close();
  assert.equal(b, 2, busy.out());
  assert.match(busy.out(), new RegExp(`--dashboard-port ${port}: cannot serve the dashboard on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)`));
  assert.equal(o, 2, open.out());
  assert.match(open.out(), /--dashboard-host 0\.0\.0\.0: a dashboard reachable from other machines requires the job token/);
  assert.equal(m, 2, missing.out());
  assert.match(missing.out(), /RUN_DIR .*nothing: no such directory/);
});

test('beyond loopback the job token is required: 401 without it, the page with it', { timeout: 120_000 }, async () => {
  const run = tmpDir('tokened');
  fs.writeFileSync(path.join(run, 'metrics.jsonl'), '{"step":1,"loss":2,"lr":0.1,"samples_per_s":3,"peak_bytes":1024,"wall_s":0.5}\n');
  const server = onelora(['dashboard', run, '--host', '0.0.0.0', '--port', '0'], { ONELORA_JOB_TOKEN: 'sesame' });
  try {
    const port = await until('the URL line', () => /^http:\/\/0\.0\.0\.0:(\d+)\/$/m.exec(server.out())?.[1], 120_000, server.out);
    const get = (headers: Record<string, string>) => fetch(`http://127.0.0.1:${port}/api/snapshot`, { headers });
    assert.equal((await get({})).status, 401);
    assert.equal((await get({ authorization: 'Bearer wrong' })).status, 401);
    const ok = await get({ authorization: 'Bearer sesame' });
    assert.equal(ok.status, 200);
    const body = (await ok.json()) as { runs: { steps: unknown[] }[] };
    assert.equal(body.runs[0]?.steps.length, 1);
    // ?token= once sets a cookie and strips the token from the address.
    const first = await fetch(`http://127.0.0.1:${port}/?token=sesame`, { redirect: 'manual' });
    assert.equal(first.status, 302);
    const cookie = (first.headers.get('set-cookie') ?? '').split(';')[0] as string;
    assert.equal((await get({ cookie })).status, 200);
  } finally {
    server.kill('SIGINT');
    await exited(server);
  }
});
