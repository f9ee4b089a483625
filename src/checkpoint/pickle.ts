// A restricted unpickler (docs/models.md#pytorch-bin-and-pt-files): the binary opcodes of pickle
// protocols 2-5 (CPython's Lib/pickle.py and pickletools.py are the reference), building plain data
// — None, bools, ints, floats, str, bytes, lists, tuples, dicts, sets — and nothing else on its own.
// A GLOBAL (or STACK_GLOBAL, INST) resolves only through the caller's allow-list, each entry a
// TypeScript function or an inert marker; any other name is a UserError naming `module.name` and the
// file before anything is called. Python code is never run: REDUCE, NEWOBJ and BUILD apply only to
// allowed names. Protocol 0/1 text opcodes and out-of-band buffers are refused (torch.save never
// writes them).
//
// Hand-written although npm has `pickleparser` (a general pickle parser, maintained): a loader of
// untrusted checkpoints must fail on the first unknown global rather than build a placeholder
// object and go on, and the allow-list is the whole point; this file is that and no more.
import { UserError } from '../errors.js';

/** A tuple (kept apart from lists so a persistent id or an argument tuple can be told by shape). */
export class PyTuple {
  constructor(readonly items: readonly unknown[]) {}
}

/** A dict (or OrderedDict, or a set's items as keys) in insertion order; `attrs` keeps BUILD's state. */
export class PyDict {
  readonly map = new Map<unknown, unknown>();
  attrs: unknown = null;
  constructor(readonly className = 'dict') {}
}

/** An object of an allowed plain-data class (argparse.Namespace): its name and its BUILD state, never its code. */
export class PyObject {
  state: unknown = null;
  constructor(readonly className: string, readonly args: readonly unknown[]) {}
}

/** What a GLOBAL pushed: the allowed name and, when it may be called, the function that stands for it. */
export class PyGlobal {
  constructor(readonly qualname: string, readonly call: ((args: readonly unknown[]) => unknown) | null) {}
}

interface UnpickleOptions {
  /** The file named in errors. */
  readonly source: string;
  /** `module.name` -> the function standing for it (null: a value that is never called, e.g. torch.FloatStorage). */
  readonly globals: ReadonlyMap<string, ((args: readonly unknown[]) => unknown) | null>;
  /** BINPERSID's handler (torch: storages in the zip's data/ folder). */
  readonly persistentLoad?: (pid: unknown) => unknown;
}

function describeOp(op: number): string {
  const c = String.fromCharCode(op);
  return op >= 0x20 && op < 0x7f ? `'${c}' (0x${op.toString(16)})` : `0x${op.toString(16)}`;
}

/** Unpickles `data`, allowing only `opts.globals`; returns the top-level value. */
export function unpickle(data: Uint8Array, opts: UnpickleOptions): unknown {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const fail: (what: string) => never = (what) => {
    throw new UserError(`${opts.source}: ${what}`);
  };
  let pos = 0;
  const need = (n: number): number => {
    if (pos + n > data.length) fail(`pickle is truncated at byte ${pos} (needs ${n} more bytes)`);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = (): number => data[need(1)]!;
  const u16 = (): number => view.getUint16(need(2), true);
  const u32 = (): number => view.getUint32(need(4), true);
  const u64 = (): number => {
    const v = view.getBigUint64(need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`pickle length ${v} is too large`);
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => data.slice(need(n), pos);
  const text = (n: number): string => new TextDecoder('utf-8', { fatal: true }).decode(data.subarray(need(n), pos));
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail(`pickle is truncated at byte ${pos} (a GLOBAL line has no end)`);
    return text(end - pos + 1).slice(0, -1);
  };
  /** Little-endian two's complement, as LONG1/LONG4 store ints. */
  const long = (n: number): number | bigint => {
    const b = data.subarray(need(n), pos);
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (n > 0 && (b[n - 1]! & 0x80) !== 0) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };

  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const pop = (): unknown => {
    if (stack.length === 0 || stack.length === marks[marks.length - 1]) fail(`pickle stack underflow at byte ${pos}`);
    return stack.pop();
  };
  const top = (): unknown => (stack.length > 0 ? stack[stack.length - 1] : fail(`pickle stack is empty at byte ${pos}`));
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail(`pickle has no MARK before byte ${pos}`);
    return stack.splice(m);
  };
  const resolve = (module: string, name: string): PyGlobal => {
    const qualname = `${module}.${name}`;
    const fn = opts.globals.get(qualname);
    if (fn === undefined) {
      fail(`the pickle refers to '${qualname}', which is not allowed: only tensors and plain data are loaded (a state dict), never code`);
    }
    return new PyGlobal(qualname, fn ?? null);
  };
  const call = (callee: unknown, args: readonly unknown[], how: string): unknown => {
    if (!(callee instanceof PyGlobal)) fail(`${how} of a ${typeName(callee)} at byte ${pos} (only allowed names are called)`);
    if (callee.call === null) fail(`'${callee.qualname}' is allowed as a value but not called (${how} at byte ${pos})`);
    return callee.call(args);
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof PyDict)) fail(`SETITEM(S) on a ${typeName(target)} at byte ${pos}`);
    if (items.length % 2 !== 0) fail(`SETITEMS with an odd number of items at byte ${pos}`);
    for (let i = 0; i < items.length; i += 2) target.map.set(items[i], items[i + 1]);
  };
  const append = (target: unknown, items: unknown[]): void => {
    if (!Array.isArray(target)) fail(`APPEND(S) on a ${typeName(target)} at byte ${pos}`);
    target.push(...items);
  };
  const addItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof PyDict) || target.className !== 'set') fail(`ADDITEMS on a ${typeName(target)} at byte ${pos}`);
    for (const x of items) target.map.set(x, true);
  };
  const tuple = (items: unknown[]): PyTuple => new PyTuple(items);

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v > 5) fail(`pickle protocol ${v} is newer than 5`);
        break;
      }
      case 0x95: need(8); break; // FRAME: the data follows inline
      case 0x2e: { // STOP
        if (stack.length !== 1 || marks.length !== 0) fail(`pickle ends with ${stack.length} values on the stack`);
        return stack[0];
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(view.getInt32(need(4), true)); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(long(u8())); break; // LONG1
      case 0x8b: stack.push(long(u32())); break; // LONG4
      case 0x47: stack.push(view.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x58: stack.push(text(u32())); break; // BINUNICODE
      case 0x8c: stack.push(text(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(text(u64())); break; // BINUNICODE8
      case 0x54: stack.push(bytes(u32())); break; // BINSTRING (Python 2 str: bytes)
      case 0x55: stack.push(bytes(u8())); break; // SHORT_BINSTRING
      case 0x42: stack.push(bytes(u32())); break; // BINBYTES
      case 0x43: stack.push(bytes(u8())); break; // SHORT_BINBYTES
      case 0x8e: stack.push(bytes(u64())); break; // BINBYTES8
      case 0x96: stack.push(bytes(u64())); break; // BYTEARRAY8
      case 0x98: top(); break; // READONLY_BUFFER: no-op on in-band data
      case 0x29: stack.push(tuple([])); break; // EMPTY_TUPLE
      case 0x85: stack.push(tuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); stack.push(tuple([pop(), b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); stack.push(tuple([pop(), b, c])); break; } // TUPLE3
      case 0x74: stack.push(tuple(popMark())); break; // TUPLE
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x61: { const x = pop(); append(top(), [x]); break; } // APPEND
      case 0x65: { const xs = popMark(); append(top(), xs); break; } // APPENDS
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x64: { const d = new PyDict(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const xs = popMark(); setItems(top(), xs); break; } // SETITEMS
      case 0x8f: stack.push(new PyDict('set')); break; // EMPTY_SET
      case 0x90: { const xs = popMark(); addItems(top(), xs); break; } // ADDITEMS
      case 0x91: { const s = new PyDict('set'); addItems(s, popMark()); stack.push(s); break; } // FROZENSET
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(`pickle memo ${i} is read before it is written (byte ${pos})`);
        stack.push(memo.get(i));
        break;
      }
      case 0x63: { const module = line(); stack.push(resolve(module, line())); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail(`STACK_GLOBAL of non-strings at byte ${pos}`);
        stack.push(resolve(module, name));
        break;
      }
      case 0x69: { const module = line(); const g = resolve(module, line()); stack.push(call(g, popMark(), 'INST')); break; } // INST
      case 0x6f: { const [cls, ...args] = popMark(); stack.push(call(cls, args, 'OBJ')); break; } // OBJ
      case 0x52: { // REDUCE
        const args = pop();
        if (!(args instanceof PyTuple)) fail(`REDUCE with ${typeName(args)} arguments at byte ${pos}`);
        stack.push(call(pop(), args.items, 'REDUCE'));
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        if (!(args instanceof PyTuple)) fail(`NEWOBJ with ${typeName(args)} arguments at byte ${pos}`);
        stack.push(call(pop(), args.items, 'NEWOBJ'));
        break;
      }
      case 0x92: { // NEWOBJ_EX: keyword arguments are not part of any allowed constructor
        const kwargs = pop();
        const args = pop();
        if (!(args instanceof PyTuple) || !(kwargs instanceof PyDict) || kwargs.map.size > 0) fail(`NEWOBJ_EX with keyword arguments at byte ${pos}`);
        stack.push(call(pop(), args.items, 'NEWOBJ_EX'));
        break;
      }
      case 0x62: { // BUILD: only plain containers take state (an OrderedDict's _metadata, a Namespace's fields)
        const state = pop();
        const obj = top();
        if (obj instanceof PyDict) obj.attrs = state;
        else if (obj instanceof PyObject) obj.state = state;
        else fail(`BUILD on a ${typeName(obj)} at byte ${pos}`);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail(`the pickle has a persistent id at byte ${pos}, which this file cannot have`);
        stack.push(opts.persistentLoad(pid));
        break;
      }
      case 0x82: case 0x83: case 0x84: fail(`the pickle uses the copyreg extension registry (opcode ${describeOp(op)}), which is not allowed`); break;
      case 0x97: fail('the pickle uses out-of-band buffers (NEXT_BUFFER), which a file cannot carry'); break;
      default:
        fail(`pickle opcode ${describeOp(op)} at byte ${pos - 1} is not supported (protocol 0/1 text opcodes, or not a pickle)`);
    }
  }
}

/** A short description of a value for messages: `str`, `tuple`, `collections.OrderedDict`… */
export function typeName(v: unknown): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'str';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'list';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyDict) return v.className;
  if (v instanceof PyObject) return v.className;
  if (v instanceof PyGlobal) return v.qualname;
  return typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v;
}
