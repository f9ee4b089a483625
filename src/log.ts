// Structured logs on stderr (pino), so stdout stays for results. ONELORA_LOG sets the level;
// ONELORA_LOG_FORMAT=json keeps pino's JSON lines, otherwise a terminal gets one readable line each.
import { Writable } from 'node:stream';
import { pino, destination, type Logger } from 'pino';

export type { Logger };

type Sink = (text: string) => void;
let sink: Sink | null = null;

/**
 * Routes what goes to stderr through `next` (null: straight to stderr) and returns the previous
 * route: a progress bar installs one that prints each line above the bar instead of into it.
 */
export function setStderrSink(next: Sink | null): Sink | null {
  const prev = sink;
  sink = next;
  return prev;
}

/** Writes whole lines to stderr, above a progress bar when one is showing. */
export function writeStderr(text: string): void {
  if (sink) sink(text);
  else process.stderr.write(text);
}

/**
 * Control characters as escapes (`\n` → `\\n`): log text often holds what a peer sent (a routing
 * id, a failure message), and a raw newline in it would print a second line that looks like ours.
 */
function escapeControl(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** Turns pino's JSON lines into `LEVEL [component] msg key=value …` for people. */
function humanStream(): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          const { level, msg, time: _t, pid: _p, hostname: _h, component, ...rest } = rec;
          const extra = Object.entries(rest)
            .map(([k, v]) => `${escapeControl(k)}=${typeof v === 'string' ? escapeControl(v) : JSON.stringify(v)}`)
            .join(' ');
          const tag = component ? `[${escapeControl(String(component))}] ` : '';
          writeStderr(`${LEVELS[Number(level)] ?? level} ${tag}${escapeControl(String(msg ?? ''))}${extra ? ' ' + extra : ''}\n`);
        } catch {
          writeStderr(line + '\n');
        }
      }
      done();
    },
  });
}

const json = process.env.ONELORA_LOG_FORMAT === 'json';

export const log: Logger = pino(
  { level: process.env.ONELORA_LOG ?? 'info', base: { pid: process.pid } },
  json ? destination({ fd: 2, sync: true }) : humanStream(),
);

export function childLog(component: string): Logger {
  return log.child({ component });
}
