// Walking the schema by dotted key, for `--set key=value` and for error messages that list the
// keys valid at a level. zod wraps objects in defaults, optionals and refinements: unwrap them.
import { z } from 'zod';
import { UserError } from '../errors.js';
import { runObject } from './schema.js';

function unwrap(s: z.ZodTypeAny): z.ZodTypeAny {
  for (;;) {
    if (s instanceof z.ZodDefault) s = s._def.innerType as z.ZodTypeAny;
    else if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap() as z.ZodTypeAny;
    else if (s instanceof z.ZodEffects) s = s.innerType() as z.ZodTypeAny;
    else return s;
  }
}

/** The object schema at a dotted path (`[]` is the top level), or null when it is not a section. */
function sectionAt(path: readonly (string | number)[]): z.AnyZodObject | null {
  let s: z.ZodTypeAny = runObject;
  for (const seg of path) {
    const u = unwrap(s);
    if (!(u instanceof z.ZodObject)) return null;
    const next = (u.shape as Record<string, z.ZodTypeAny>)[String(seg)];
    if (!next) return null;
    s = next;
  }
  const u = unwrap(s);
  return u instanceof z.ZodObject ? (u as z.AnyZodObject) : null;
}

export function knownKeys(path: readonly (string | number)[]): string[] {
  const s = sectionAt(path);
  return s ? Object.keys(s.shape) : [];
}

function kindOf(s: z.ZodTypeAny): string {
  const u = unwrap(s);
  if (u instanceof z.ZodNumber) return 'a number';
  if (u instanceof z.ZodString) return 'a string';
  if (u instanceof z.ZodBoolean) return 'a boolean';
  if (u instanceof z.ZodEnum) return `one of ${(u.options as string[]).join(' | ')}`;
  if (u instanceof z.ZodTuple) return 'a list';
  return 'a value';
}

/** Checks that `key` names a setting of the schema (throws a UserError naming it otherwise); says whether it holds text. */
export function checkKey(key: string, source: string): { parts: string[]; text: boolean } {
  const parts = key.split('.');
  if (parts.some((p) => p === '')) throw new UserError(`${source}: '${key}' is not a dotted key like optim.lr`);
  let s: z.ZodTypeAny = runObject;
  for (let i = 0; i < parts.length; i++) {
    const u = unwrap(s);
    const here = parts.slice(0, i);
    if (!(u instanceof z.ZodObject)) {
      throw new UserError(`${source}: '${here.join('.')}' is ${kindOf(u)}, not a section, so '${key}' does not exist`);
    }
    const next = (u.shape as Record<string, z.ZodTypeAny>)[parts[i]!];
    if (!next) {
      throw new UserError(`${source}: unknown key '${parts.slice(0, i + 1).join('.')}' (known${here.length ? ` in ${here.join('.')}` : ''}: ${Object.keys(u.shape).join(', ')})`);
    }
    s = next;
  }
  const leaf = unwrap(s);
  return { parts, text: leaf instanceof z.ZodString || leaf instanceof z.ZodEnum };
}
