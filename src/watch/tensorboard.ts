// TensorBoard event files under RUN_DIR/tensorboard/ (docs/training.md#tensorboard): the scalars
// of every metrics.jsonl line, so `tensorboard --logdir runs/` shows a run as it trains.
//
// No npm package writes these files (the TensorBoard writers are Python, C++ and Rust), so the
// format is written here by hand: a file is a sequence of TFRecords, each
//   uint64 length (little-endian) · uint32 masked CRC-32C of those 8 bytes · data · uint32 masked CRC-32C of data
// where data is one `tensorflow.Event` protobuf, encoded with protobufjs from the message subset
// below (field numbers of tensorflow/core/util/event.proto and core/framework/summary.proto).
// The first event of a file carries `file_version` ("brain.Event:2"), the rest one `Summary` of
// `simple_value` scalars per metrics line. test/watch/tensorboard.test.ts reads the files back with
// an independent reader (scripts/read-tfevents.py, Python's protobuf and crc32c).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import protobuf from 'protobufjs';

const root = protobuf.Root.fromJSON({
  nested: {
    tensorflow: {
      nested: {
        Event: {
          oneofs: { what: { oneof: ['file_version', 'summary', 'session_log'] } },
          fields: {
            wall_time: { type: 'double', id: 1 },
            step: { type: 'int64', id: 2 },
            file_version: { type: 'string', id: 3 },
            summary: { type: 'Summary', id: 5 },
            session_log: { type: 'SessionLog', id: 7 },
          },
        },
        Summary: {
          fields: { value: { rule: 'repeated', type: 'Value', id: 1 } },
          nested: {
            Value: {
              oneofs: { value: { oneof: ['simple_value'] } },
              fields: { tag: { type: 'string', id: 1 }, simple_value: { type: 'float', id: 2 } },
            },
          },
        },
        SessionLog: {
          fields: { status: { type: 'SessionStatus', id: 1 } },
          nested: { SessionStatus: { values: { STATUS_UNSPECIFIED: 0, START: 1, STOP: 2, CHECKPOINT: 3 } } },
        },
      },
    },
  },
});
const Event = root.lookupType('tensorflow.Event');

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven; Node has only zlib's CRC-32. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of buf) c = (CRC_TABLE[(c ^ byte) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masking: rotate right by 15 bits and add a constant (a CRC of CRC-bearing data stays informative). */
function maskedCrc(buf: Uint8Array): number {
  const c = crc32c(buf);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord around `data`. */
export function tfRecord(data: Uint8Array): Buffer {
  const head = Buffer.alloc(12);
  head.writeBigUInt64LE(BigInt(data.length), 0);
  head.writeUInt32LE(maskedCrc(head.subarray(0, 8)), 8);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(maskedCrc(data), 0);
  return Buffer.concat([head, data, tail]);
}

type EventFields = { step?: number; file_version?: string; summary?: { value: { tag: string; simple_value: number }[] }; session_log?: { status: number } };

function encodeEvent(e: EventFields, wallTime: number): Buffer {
  return tfRecord(Event.encode(Event.fromObject({ wall_time: wallTime, ...e })).finish());
}

/**
 * The scalars of one metrics.jsonl line, by TensorBoard tag: `train/…` for a step's loss, learning
 * rate and gradient norm, `throughput/…`, `memory/peak_bytes`, `time/…` for the phases of the step
 * (the slowest rank's under launch) and its straggler, `eval/…` for an evaluation line.
 */
function scalarsOf(line: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  const put = (tag: string, v: unknown): void => {
    if (typeof v === 'number' && Number.isFinite(v)) out[tag] = v;
  };
  const ev = line.eval;
  if (ev && typeof ev === 'object') {
    for (const [k, v] of Object.entries(ev)) put(`eval/${k}`, v);
    return out;
  }
  put('train/loss', line.loss);
  put('train/lr', line.lr);
  put('train/grad_norm', line.grad_norm);
  put('throughput/tokens_per_s', line.tokens_per_s);
  put('throughput/samples_per_s', line.samples_per_s);
  put('memory/peak_bytes', line.peak_bytes);
  for (const k of ['data_wait_s', 'compute_s', 'allreduce_s', 'optimizer_s']) put(`time/${k}`, line[k]);
  const straggler = line.straggler as { busy_s?: unknown } | undefined;
  put('time/straggler_busy_s', straggler?.busy_s);
  put('train/workers', line.workers);
  return out;
}

/** `RUN_DIR/tensorboard/events.out.tfevents.<secs>.<host>`, one new file per process that writes the run. */
export class TensorBoardWriter {
  readonly file: string;
  private readonly fd: number;

  constructor(output: string) {
    const dir = path.join(output, 'tensorboard');
    fs.mkdirSync(dir, { recursive: true });
    const base = `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${os.hostname()}`;
    // Two writers in one second (a quick resume): TensorBoard reads every file of the directory.
    let file = path.join(dir, base);
    for (let n = 1; fs.existsSync(file); n++) file = path.join(dir, `${base}.${n}`);
    this.file = file;
    this.fd = fs.openSync(file, 'a');
    this.write({ file_version: 'brain.Event:2' });
  }

  /**
   * The run (re)starts at `step`: a resume, or a group restored from disk training steps again.
   * TensorBoard drops the points at or after `step` that earlier files hold (a SessionLog START in a
   * version-2 file), so the steps trained twice are drawn once.
   */
  restart(step: number): void {
    this.write({ step, session_log: { status: 1 } });
  }

  /** One metrics.jsonl line as one event of scalars at its step. */
  line(line: Record<string, unknown> & { step: number }): void {
    const value = Object.entries(scalarsOf(line)).map(([tag, simple_value]) => ({ tag, simple_value }));
    if (value.length > 0) this.write({ step: line.step, summary: { value } });
  }

  private write(e: EventFields): void {
    fs.writeSync(this.fd, encodeEvent(e, Date.now() / 1000));
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
