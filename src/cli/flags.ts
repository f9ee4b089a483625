// The flag parsers every command shares. One numeric check serves both places a number is read:
// commander's argument parsers (an InvalidArgumentError, which commander prefixes with the flag
// and value and main.ts maps to exit 2) and the parsers run inside an action (a UserError, exit 2
// too, naming the flag and value itself).
import { InvalidArgumentError, Option } from 'commander';
import { BACKEND_CHOICES } from '../backend/choices.js';
import { UserError } from '../errors.js';

/** What a numeric flag accepts, and how its error says so. */
interface Want {
  readonly ok: (n: number) => boolean;
  readonly text: string;
}

const integer = (min: number): Want => ({ ok: (n) => Number.isInteger(n) && n >= min, text: `an integer ≥ ${min}` });
const finite: Want = { ok: Number.isFinite, text: 'a number' };

function parseNumber(value: string, want: Want): number | undefined {
  const n = Number(value);
  return want.ok(n) ? n : undefined;
}

function commanderParser(want: Want): (value: string) => number {
  return (value) => {
    const n = parseNumber(value, want);
    if (n === undefined) throw new InvalidArgumentError(`expected ${want.text}`);
    return n;
  };
}

/** Commander parser of an integer flag ≥ min. */
export function intFlag(min = 0): (value: string) => number {
  return commanderParser(integer(min));
}

/** Commander parser of a finite number. */
export function floatFlag(): (value: string) => number {
  return commanderParser(finite);
}

function actionValue(flag: string, value: string | undefined, def: number, want: Want): number {
  if (value === undefined) return def;
  const n = parseNumber(value, want);
  if (n === undefined) throw new UserError(`${flag}: expected ${want.text}, got '${value}'`);
  return n;
}

/** An integer flag ≥ min read inside an action, `def` when absent. */
export function parseIntFlag(flag: string, value: string | undefined, def: number, min = 0): number {
  return actionValue(flag, value, def, integer(min));
}

/** A finite number flag that passes `ok` (described as `want`) read inside an action, `def` when absent. */
export function parseNumFlag(flag: string, value: string | undefined, def: number, ok: (n: number) => boolean, want: string): number {
  return actionValue(flag, value, def, { ok: (n) => Number.isFinite(n) && ok(n), text: want });
}

/** Collects a repeatable flag (`--set a=1 --set b=2`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * `--backend <name>`, checked by commander so that a wrong value is an error naming the flag (exit
 * 2); the config key `backend` and ONELORA_BACKEND are checked where they are read.
 */
export function backendOption(): Option {
  return new Option('--backend <name>', BACKEND_CHOICES.join('|')).choices(BACKEND_CHOICES);
}
