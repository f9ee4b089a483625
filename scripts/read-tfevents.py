#!/usr/bin/python3
"""An independent reader of TensorBoard event files, for the test suite.

    read-tfevents.py RUN_DIR

Reads every RUN_DIR/tensorboard/events.out.tfevents.* file in name order (as TensorBoard does),
checks each TFRecord's two masked CRC-32Cs (of the length and of the data), decodes the data as
tensorflow.Event with Python's protobuf (the message types are built here from the field numbers of
TensorBoard's event.proto and summary.proto: TensorBoard itself need not be installed), applies
TensorBoard's restart rule (a SessionLog START at step s drops the points at steps >= s seen
before it), and compares the scalars with RUN_DIR/metrics.jsonl: every number of every line must be
there under its tag at its step, as a float32, and nothing else. Prints one JSON object (records,
files, tags, points); exits 1 naming the first mismatch. Needs Debian's python3-protobuf and
python3-crc32c.
"""
import glob
import json
import math
import os
import struct
import sys

import crc32c
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def build_event_class():
    fdp = descriptor_pb2.FileDescriptorProto(name='tfevents_reader.proto', package='tensorflow', syntax='proto3')

    def field(msg, name, number, ftype, type_name=None, repeated=False, oneof=None):
        f = msg.field.add(name=name, number=number, type=ftype,
                          label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
        if type_name:
            f.type_name = type_name
        if oneof is not None:
            f.oneof_index = oneof

    ev = fdp.message_type.add(name='Event')
    ev.oneof_decl.add(name='what')
    field(ev, 'wall_time', 1, F.TYPE_DOUBLE)
    field(ev, 'step', 2, F.TYPE_INT64)
    field(ev, 'file_version', 3, F.TYPE_STRING, oneof=0)
    field(ev, 'graph_def', 4, F.TYPE_BYTES, oneof=0)
    field(ev, 'summary', 5, F.TYPE_MESSAGE, '.tensorflow.Summary', oneof=0)
    field(ev, 'session_log', 7, F.TYPE_MESSAGE, '.tensorflow.SessionLog', oneof=0)

    summ = fdp.message_type.add(name='Summary')
    field(summ, 'value', 1, F.TYPE_MESSAGE, '.tensorflow.Summary.Value', repeated=True)
    val = summ.nested_type.add(name='Value')
    val.oneof_decl.add(name='value')
    field(val, 'tag', 1, F.TYPE_STRING)
    field(val, 'simple_value', 2, F.TYPE_FLOAT, oneof=0)
    field(val, 'node_name', 7, F.TYPE_STRING)

    sl = fdp.message_type.add(name='SessionLog')
    status = sl.enum_type.add(name='SessionStatus')
    for name, number in [('STATUS_UNSPECIFIED', 0), ('START', 1), ('STOP', 2), ('CHECKPOINT', 3)]:
        status.value.add(name=name, number=number)
    field(sl, 'status', 1, F.TYPE_ENUM, '.tensorflow.SessionLog.SessionStatus')
    field(sl, 'checkpoint_path', 2, F.TYPE_STRING)
    field(sl, 'msg', 3, F.TYPE_STRING)

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    desc = pool.FindMessageTypeByName('tensorflow.Event')
    if hasattr(message_factory, 'GetMessageClass'):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


Event = build_event_class()


def masked(data):
    c = crc32c.crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def records(path):
    with open(path, 'rb') as fh:
        buf = fh.read()
    pos = 0
    while pos < len(buf):
        if len(buf) - pos < 12:
            fail(f'{path}: {len(buf) - pos} stray bytes at offset {pos}')
        (length,) = struct.unpack_from('<Q', buf, pos)
        (len_crc,) = struct.unpack_from('<I', buf, pos + 8)
        if masked(buf[pos:pos + 8]) != len_crc:
            fail(f'{path}: length CRC mismatch at offset {pos}')
        data = buf[pos + 12:pos + 12 + length]
        if len(data) != length or len(buf) < pos + 16 + length:
            fail(f'{path}: record at offset {pos} cut short')
        (data_crc,) = struct.unpack_from('<I', buf, pos + 12 + length)
        if masked(data) != data_crc:
            fail(f'{path}: data CRC mismatch at offset {pos}')
        yield data
        pos += 16 + length


def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


# metrics.jsonl key -> TensorBoard tag, for a step line (an eval line's keys go under eval/).
STEP_TAGS = {
    'loss': 'train/loss', 'lr': 'train/lr', 'grad_norm': 'train/grad_norm',
    'tokens_per_s': 'throughput/tokens_per_s', 'samples_per_s': 'throughput/samples_per_s',
    'peak_bytes': 'memory/peak_bytes', 'workers': 'train/workers',
    'data_wait_s': 'time/data_wait_s', 'compute_s': 'time/compute_s',
    'allreduce_s': 'time/allreduce_s', 'optimizer_s': 'time/optimizer_s',
}
NOT_SCALARS = {'step', 'wall_s'}


def expected(metrics_file):
    want = {}
    with open(metrics_file) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            m = json.loads(line)
            step = m['step']
            if 'eval' in m:
                pairs = [(f'eval/{k}', v) for k, v in m['eval'].items()]
            else:
                pairs = []
                for k, v in m.items():
                    if k in NOT_SCALARS:
                        continue
                    if k == 'straggler':
                        pairs.append(('time/straggler_busy_s', v['busy_s']))
                    elif k in STEP_TAGS:
                        pairs.append((STEP_TAGS[k], v))
                    else:
                        fail(f'{metrics_file} line {n}: key {k!r} has no TensorBoard tag in this reader')
            for tag, v in pairs:
                if isinstance(v, (int, float)) and math.isfinite(v):
                    want[(tag, step)] = f32(v)
    return want


def main():
    run = sys.argv[1]
    files = sorted(glob.glob(os.path.join(run, 'tensorboard', 'events.out.tfevents.*')))
    if not files:
        fail(f'{run}/tensorboard: no event files')
    points = {}  # (tag, step) -> value
    n_records = 0
    for path in files:
        first = True
        for data in records(path):
            n_records += 1
            e = Event()
            e.ParseFromString(data)
            kind = e.WhichOneof('what')
            if first:
                if kind != 'file_version' or e.file_version != 'brain.Event:2':
                    fail(f'{path}: the first event is {kind}, not file_version brain.Event:2')
                first = False
                continue
            if kind == 'session_log' and e.session_log.status == 1:
                points = {k: v for k, v in points.items() if k[1] < e.step}
            elif kind == 'summary':
                for v in e.summary.value:
                    if v.WhichOneof('value') != 'simple_value':
                        fail(f'{path}: tag {v.tag} at step {e.step} is not a simple_value')
                    points[(v.tag, e.step)] = v.simple_value
                if e.wall_time < 1e9:
                    fail(f'{path}: wall_time {e.wall_time} is not seconds since 1970')
            else:
                fail(f'{path}: unexpected event {kind} at step {e.step}')
    want = expected(os.path.join(run, 'metrics.jsonl'))
    for key, v in want.items():
        if key not in points:
            fail(f'{key[0]} at step {key[1]}: in metrics.jsonl, not in the event files')
        if points[key] != v:
            fail(f'{key[0]} at step {key[1]}: {points[key]} in the event files, {v} in metrics.jsonl')
    extra = sorted(set(points) - set(want))
    if extra:
        fail(f'{extra[0][0]} at step {extra[0][1]}: in the event files, not in metrics.jsonl ({len(extra)} such points)')
    tags = sorted({t for t, _ in points})
    print(json.dumps({'files': len(files), 'records': n_records, 'tags': tags, 'points': len(points)}))


if __name__ == '__main__':
    main()
