// zod issues → one UserError whose lines each name the source (the YAML file or the `--set` that
// supplied the value), the dotted key, what was expected and what was there.
import type { z } from 'zod';
import { UserError } from '../errors.js';
import { knownKeys } from './keys.js';
import type { Override } from './overrides.js';

function valueAt(raw: unknown, path: readonly (string | number)[]): unknown {
  let v = raw;
  for (const seg of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function show(v: unknown): string {
  const type = v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v;
  const text = JSON.stringify(v);
  return text === undefined ? type : `${type} ${text.length > 60 ? text.slice(0, 57) + '...' : text}`;
}

/** The last override that set this key or a section above it (or below it, for a whole-section issue). */
function sourceOf(path: readonly (string | number)[], overrides: readonly Override[], file: string): string {
  const dotted = path.join('.');
  for (let i = overrides.length - 1; i >= 0; i--) {
    const k = overrides[i]!.key;
    if (dotted === k || dotted.startsWith(k + '.') || k.startsWith(dotted + '.')) return overrides[i]!.source;
  }
  return file;
}

function describe(issue: z.ZodIssue, raw: unknown): string {
  const value = valueAt(raw, issue.path);
  switch (issue.code) {
    case 'invalid_type':
      if (issue.received === 'undefined') return `missing (expected ${issue.expected})`;
      return `expected ${issue.expected}, got ${show(value)}`;
    case 'invalid_enum_value':
      return `expected one of ${issue.options.join(' | ')}, got ${show(value)}`;
    case 'too_small':
      if (issue.type === 'array') return `expected at least ${String(issue.minimum)} items, got ${show(value)}`;
      if (issue.type === 'string') return `expected a non-empty string, got ${show(value)}`;
      return `expected a number ${issue.inclusive ? '≥' : '>'} ${String(issue.minimum)}, got ${show(value)}`;
    case 'too_big':
      if (issue.type === 'array') return `expected at most ${String(issue.maximum)} items, got ${show(value)}`;
      return `expected a number ${issue.inclusive ? '≤' : '<'} ${String(issue.maximum)}, got ${show(value)}`;
    default:
      return issue.message;
  }
}

/** Every issue of a failed parse, one line each, as a UserError. */
export function toUserError(error: z.ZodError, raw: unknown, file: string, overrides: readonly Override[]): UserError {
  const lines: string[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(issue.path).join(', ');
      for (const k of issue.keys) {
        const full = [...issue.path, k];
        lines.push(`${sourceOf(full, overrides, file)}: unknown key '${full.join('.')}' (known: ${known})`);
      }
      continue;
    }
    const key = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    lines.push(`${sourceOf(issue.path, overrides, file)}: ${key}: ${describe(issue, raw)}`);
  }
  return new UserError(lines.join('\n'));
}
