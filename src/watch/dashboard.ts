// The dashboard's HTTP server (plain node:http; the page is three static files): the page, the
// browser builds of vega and vega-lite from node_modules (nothing from a CDN, no front-end build),
// a JSON snapshot, and a server-sent event stream that starts with the same snapshot and then
// carries what the runs append and the worker table of a `launch`. Runs are read from disk
// (dashboard-runs.ts), so a live run and `onelora dashboard RUN_DIR` show the same page.
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { RunTail } from './dashboard-runs.js';
import type { GroupSnapshot } from './dashboard-group.js';

const PAGE = fileURLToPath(new URL('./page/', import.meta.url));
const require = createRequire(import.meta.url);

/** URL path → file and content type: everything the server hands out, nothing else. */
const FILES: Record<string, { file: () => string; type: string }> = {
  '/': { file: () => path.join(PAGE, 'index.html'), type: 'text/html; charset=utf-8' },
  '/page/dashboard.js': { file: () => path.join(PAGE, 'dashboard.js'), type: 'text/javascript; charset=utf-8' },
  '/page/charts.js': { file: () => path.join(PAGE, 'charts.js'), type: 'text/javascript; charset=utf-8' },
  '/page/style.css': { file: () => path.join(PAGE, 'style.css'), type: 'text/css; charset=utf-8' },
  '/vendor/vega.min.js': { file: () => require.resolve('vega/build/vega.min.js'), type: 'text/javascript; charset=utf-8' },
  '/vendor/vega-lite.min.js': { file: () => require.resolve('vega-lite/build/vega-lite.min.js'), type: 'text/javascript; charset=utf-8' },
};

const COOKIE = 'onelora_dashboard';
const POLL_MS = 500;
const KEEPALIVE_TICKS = 30;

export interface DashboardOptions {
  /** The runs shown (expandRunDirs of what the user named, or a live run's --output). */
  runs: readonly { dir: string; name: string }[];
  port: number;
  /** 127.0.0.1 unless told otherwise; anything but loopback needs `token`. */
  host?: string;
  token?: string;
  /** The flag that set the port (named when it is taken). */
  portFlag?: string;
  hostFlag?: string;
  title: string;
}

const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || /^127\./.test(host);

/** Refuses a dashboard bound beyond loopback without the job token (as the coordinator's RPCs need it). */
export function dashboardToken(host: string, hostFlag: string): string | undefined {
  if (isLoopback(host)) return undefined;
  const token = process.env.ONELORA_JOB_TOKEN ?? '';
  if (!token) throw new UserError(`${hostFlag} ${host}: a dashboard reachable from other machines requires the job token; export ONELORA_JOB_TOKEN=$(openssl rand -hex 24) and open the URL with ?token=<it>`);
  return token;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class Dashboard {
  private readonly server: http.Server;
  private readonly tails: RunTail[];
  private readonly clients = new Set<http.ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private lastGroup = '';
  private ticks = 0;
  /** A `launch`'s worker table, once its coordinator listens. */
  group: (() => GroupSnapshot) | null = null;
  url = '';

  private constructor(private readonly opts: DashboardOptions) {
    this.tails = opts.runs.map((r, i) => new RunTail(`run${i}`, r.name, r.dir));
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  /** Listens on host:port (0: a free port); a taken port is the user's to change (exit 2). */
  static async start(opts: DashboardOptions): Promise<Dashboard> {
    const d = new Dashboard(opts);
    const host = opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      d.server.once('error', (e: NodeJS.ErrnoException) =>
        reject(e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL'
          ? new UserError(`${opts.portFlag ?? '--port'} ${opts.port}: cannot serve the dashboard on ${host}:${opts.port} (${e.code}); give another port, or 0 for a free one`)
          : e));
      d.server.listen(opts.port, host, () => resolve());
    });
    const port = (d.server.address() as { port: number }).port;
    d.url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
    for (const t of d.tails) t.poll();
    d.timer = setInterval(() => d.tick(), POLL_MS);
    return d;
  }

  private snapshot(): { title: string; runs: ReturnType<RunTail['snapshot']>[]; group: GroupSnapshot | null } {
    return { title: this.opts.title, runs: this.tails.map((t) => t.snapshot()), group: this.group?.() ?? null };
  }

  private send(res: http.ServerResponse, event: string, data: unknown): void {
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private broadcast(event: string, data: unknown): void {
    for (const c of this.clients) this.send(c, event, data);
  }

  private tick(): void {
    // A comment line now and then, so that nothing between the page and here drops an idle stream.
    if (++this.ticks % KEEPALIVE_TICKS === 0) for (const c of this.clients) c.write(':\n\n');
    for (const t of this.tails) {
      const u = t.poll();
      if (u) this.broadcast('run', u);
    }
    const g = this.group?.();
    if (!g) return;
    const key = JSON.stringify({ ...g, now: 0 });
    if (key !== this.lastGroup) {
      this.lastGroup = key;
      this.broadcast('group', g);
    }
  }

  private authorised(req: http.IncomingMessage, url: URL, res: http.ServerResponse): boolean {
    const token = this.opts.token;
    if (!token) {
      // Loopback without a token: a page elsewhere that points its own host name at 127.0.0.1 (DNS
      // rebinding) must not read the run, so only loopback names are answered.
      const host = (req.headers.host ?? '').replace(/:\d+$/, '');
      if (isLoopback(host.replace(/^\[(.*)\]$/, '$1'))) return true;
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' }).end('the dashboard answers only to a loopback address (127.0.0.1, localhost)\n');
      return false;
    }
    const given = url.searchParams.get('token');
    if (given !== null && sameSecret(given, token)) {
      // Once from the URL, then from a cookie, so the page's own requests need not carry it.
      url.searchParams.delete('token');
      res.writeHead(302, { location: url.pathname + url.search, 'set-cookie': `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/` }).end();
      return false;
    }
    const cookie = (req.headers.cookie ?? '').split(/;\s*/).find((c) => c.startsWith(`${COOKIE}=`))?.slice(COOKIE.length + 1);
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if ((cookie && sameSecret(decodeURIComponent(cookie), token)) || (bearer && sameSecret(bearer, token))) return true;
    res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8' }).end('this dashboard needs the job token: open it with ?token=$ONELORA_JOB_TOKEN\n');
    return false;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    if (req.method !== 'GET') return void res.writeHead(405).end();
    if (!this.authorised(req, url, res)) return;
    if (url.pathname === '/api/snapshot') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(this.snapshot()));
      return;
    }
    if (url.pathname === '/api/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      // The stream opens with everything so far, so a page opened mid-run misses nothing.
      this.send(res, 'snapshot', this.snapshot());
      this.clients.add(res);
      req.on('close', () => this.clients.delete(res));
      return;
    }
    if (url.pathname === '/favicon.ico') return void res.writeHead(204).end();
    const f = FILES[url.pathname];
    if (!f) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    fs.readFile(f.file(), (err, body) => {
      if (err) return void res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
      res.writeHead(200, { 'content-type': f.type, 'cache-control': 'no-cache' }).end(body);
    });
  }

  /** Sends what the runs wrote last (their summary.json), ends the streams and stops listening. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.tick();
    this.broadcast('end', {});
    for (const c of this.clients) c.end();
    this.clients.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
