// Structured logs on stderr (pino), so stdout stays for results. ONELORA_LOG sets the level;
// ONELORA_LOG_FORMAT=json keeps pino's JSON lines, otherwise a terminal gets one readable line each.
import { Writable } from 'node:stream';
import { pino, destination, type Logger } from 'pino';

export type { Logger };

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
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' ');
          const tag = component ? `[${String(component)}] ` : '';
          process.stderr.write(`${LEVELS[Number(level)] ?? level} ${tag}${String(msg ?? '')}${extra ? ' ' + extra : ''}\n`);
        } catch {
          process.stderr.write(line + '\n');
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
