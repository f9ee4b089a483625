// The strict check every loader runs before reading a weight (as transformers' strict loading):
// the file's tensor names and shapes against what the model (or the adapter) will create. A name
// missing, a name unexpected, or a shape that differs is a TensorSetError naming the file and the
// tensor; names the model knowingly drops are `ignored`, and `optional` ones (a task head that is
// created when absent) are returned instead of raised.
import { UserError } from '../errors.js';

export type TensorSetProblem = 'missing' | 'unexpected' | 'shape';

export class TensorSetError extends UserError {
  constructor(readonly problem: TensorSetProblem, readonly source: string, readonly tensors: readonly string[], message: string) {
    super(`${source}: ${message}`);
  }
}

export interface TensorSetCheck {
  /** Names the file must hold, with the shapes it must hold them in. */
  readonly expected: ReadonlyMap<string, readonly number[]>;
  /** Names (and their shapes) in the file, e.g. a SafetensorsSource's `tensors`. */
  readonly found: ReadonlyMap<string, { readonly shape: readonly number[] }>;
  /** The file named in every error. */
  readonly source: string;
  /** File names the model does not use. With a shape, the tensor must still have it. */
  readonly ignored?: (name: string) => boolean | readonly number[];
  /** Expected names that may be absent or of another shape (created instead). */
  readonly optional?: (name: string) => boolean;
  /** Appended to the messages: what a missing name belongs to, what the expected set is. */
  readonly notes?: { readonly missing?: string; readonly unexpected?: string; readonly shape?: string };
}

function listNames(names: readonly string[]): string {
  const shown = names.slice(0, 5).map((n) => `'${n}'`).join(', ');
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}

const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
const plural = (n: number): string => (n > 1 ? 's' : '');

/**
 * Raises the first problem found, in the order unexpected, shape, missing; returns the optional
 * names the file lacks (or holds in another shape), which the caller creates.
 */
export function checkTensorSet(c: TensorSetCheck): { absent: string[] } {
  const notes = c.notes ?? {};
  const unexpected: string[] = [];
  for (const [name, info] of c.found) {
    if (c.expected.has(name)) continue;
    const ignored = c.ignored?.(name) ?? false;
    if (ignored === false) unexpected.push(name);
    else if (ignored !== true && !sameShape(info.shape, ignored)) {
      throw new TensorSetError('shape', c.source, [name], `tensor '${name}' has shape ${shapeText(info.shape)}, ${notes.shape ?? 'expected'} ${shapeText(ignored)}`);
    }
  }
  if (unexpected.length > 0) {
    throw new TensorSetError('unexpected', c.source, unexpected, `unexpected tensor${plural(unexpected.length)} ${listNames(unexpected)}${notes.unexpected ? ` (${notes.unexpected})` : ''}`);
  }
  const missing: string[] = [];
  const absent: string[] = [];
  for (const [name, want] of c.expected) {
    const info = c.found.get(name);
    const optional = c.optional?.(name) ?? false;
    if (info && !sameShape(info.shape, want) && !optional) {
      throw new TensorSetError('shape', c.source, [name], `tensor '${name}' has shape ${shapeText(info.shape)}, ${notes.shape ?? 'expected'} ${shapeText(want)}`);
    }
    if (!info || !sameShape(info.shape, want)) (optional ? absent : missing).push(name);
  }
  if (missing.length > 0) {
    throw new TensorSetError('missing', c.source, missing, `missing tensor${plural(missing.length)} ${listNames(missing)}${notes.missing ? ` (${notes.missing})` : ''}`);
  }
  return { absent };
}
