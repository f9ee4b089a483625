// `launch` keeps its job token off the network: its gRPC is a Unix socket in a mode-0700 directory,
// so the only TCP sockets of the launch process and its workers are the workers' ZeroMQ ones.
// Checked from outside, while a real 2-worker `onelora launch` of the demo preset runs, from the
// kernel's own tables: each process's socket inodes (/proc/PID/fd) looked up in its namespace's
// /proc/PID/net/tcp{,6} and /proc/PID/net/unix. The same check, pointed at a job whose gRPC is on
// 127.0.0.1 (`onelora coordinator --bind 127.0.0.1:0` and a worker), must find the gRPC sockets.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig, toYaml } from '../../src/config/index.js';
import { tmpDir } from '../helpers.js';
import { start, until } from '../faults/procs.js';

interface TcpSocket { local: number; remote: number; listening: boolean }

/** The socket inodes PID holds open (fd links `socket:[INODE]`). */
function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  let fds: string[] = [];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch {
      // closed between readdir and readlink
    }
  }
  return out;
}

const readProc = (file: string): string[] => {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(1);
  } catch {
    return [];
  }
};

/** PID's TCP sockets (v4 and v6): local and remote port, LISTEN or not. */
function tcpSockets(pid: number): TcpSocket[] {
  const mine = socketInodes(pid);
  return [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`].flatMap(readProc).flatMap((line) => {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
    const f = line.trim().split(/\s+/);
    if (!mine.has(f[9]!)) return [];
    const port = (addr: string): number => parseInt(addr.split(':')[1]!, 16);
    return [{ local: port(f[1]!), remote: port(f[2]!), listening: f[3] === '0A' }];
  });
}

/** Paths of the Unix sockets PID holds (bound ones carry their path in the last column). */
function unixPaths(pid: number): string[] {
  const mine = socketInodes(pid);
  // Num RefCount Protocol Flags Type St Inode Path
  return readProc(`/proc/${pid}/net/unix`).map((l) => l.trim().split(/\s+/)).filter((f) => mine.has(f[6]!) && f[7]).map((f) => f[7]!);
}

/** The launcher's worker processes (children whose argv has --rank). */
function workersOf(pid: number): number[] {
  let children: number[] = [];
  try {
    children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
  return children.filter((c) => {
    try {
      return fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').split('\0').includes('--rank');
    } catch {
      return false;
    }
  });
}

/** The TCP sockets of a sample that neither are nor reach one of the ZeroMQ ports: gRPC (or anything else). */
const strays = (sample: Sample, zmqPorts: Set<number>): string[] =>
  sample.tcp.filter((s) => !zmqPorts.has(s.local) && !zmqPorts.has(s.remote)).map((s) => `${sample.who} (pid ${sample.pid}): ${s.listening ? 'listens on' : 'connected'} port ${s.listening ? s.local : `${s.local} -> ${s.remote}`}`);

/** The permission bits of DIR; null once it is gone (the end of the run may remove it under us). */
function modeOf(dir: string): number | null {
  try {
    return fs.statSync(dir).mode & 0o777;
  } catch {
    return null;
  }
}

interface Sample { who: string; pid: number; tcp: TcpSocket[]; unix: string[] }
const sample = (who: string, pid: number): Sample => ({ who, pid, tcp: tcpSockets(pid), unix: unixPaths(pid) });

const zmqPortsIn = (log: string): Set<number> => new Set([...log.matchAll(/ZeroMQ endpoint tcp:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1])));

const TOKEN = 'launch-local-token';
const root = tmpDir('launch-local');
const cfgFile = path.join(root, 'demo.yaml');
fs.writeFileSync(cfgFile, toYaml(loadConfig(new URL('../../presets/demo.yaml', import.meta.url).pathname, [
  'eval.generate=false', 'eval.max_batches=1', 'eval.every=0', 'distributed.workers=2',
])));

test('launch: no TCP socket of the launch process or its workers but the workers\' ZeroMQ ones; gRPC is a Unix socket in a 0700 directory', async () => {
  // debug: a worker under launch logs its ZeroMQ endpoint at debug
  const p = start('launch', ['launch', '--config', cfgFile, '--workers', '2', '--output', path.join(root, 'out'), '--max-steps', '3', '--backend', 'wasm'], { ONELORA_LOG: 'debug', ONELORA_JOB_TOKEN: TOKEN });
  const pid = p.child.pid!;
  const samples: Sample[] = [];
  let exited = false;
  let dirMode: number | null = null;
  void p.exit.then(() => (exited = true));
  // Sample until the run ends: every socket either process held at any of these moments is checked.
  while (!exited) {
    const workers = workersOf(pid);
    samples.push(sample('launch', pid), ...workers.map((w) => sample('worker', w)));
    const bound = samples.at(-workers.length - 1)!.unix.find((u) => u.endsWith('/coordinator.sock'));
    if (bound && dirMode === null) dirMode = modeOf(path.dirname(bound));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(await p.exit, 0, p.stderr().slice(-3000));
  const zmq = zmqPortsIn(p.stderr());
  assert.equal(zmq.size, 2, `both workers' ZeroMQ endpoints in the log: ${[...zmq]}`);
  // The method sees TCP: each worker's ZeroMQ listener, and a connection to the other's.
  const workerSamples = samples.filter((s) => s.who === 'worker' && s.tcp.length > 0);
  for (const port of zmq) {
    assert.ok(workerSamples.some((s) => s.tcp.some((t) => t.listening && t.local === port)), `a worker listening on its ZeroMQ port ${port} was seen`);
    assert.ok(workerSamples.some((s) => s.tcp.some((t) => !t.listening && t.remote === port)), `a connection to ZeroMQ port ${port} was seen`);
  }
  assert.deepEqual([...new Set(samples.flatMap((s) => strays(s, zmq)))], [], 'no TCP socket but ZeroMQ\'s');
  assert.deepEqual(samples.filter((s) => s.who === 'launch').flatMap((s) => s.tcp), [], 'the launch process has no TCP socket at all');
  // Its gRPC: a Unix socket in a directory only this user can enter.
  const sock = samples.find((s) => s.who === 'launch' && s.unix.some((u) => u.endsWith('/coordinator.sock')))?.unix.find((u) => u.endsWith('/coordinator.sock'));
  assert.ok(sock, 'the launch process was seen bound to its coordinator.sock');
  assert.equal(dirMode, 0o700, `${path.dirname(sock)} is mode 0700`);
  assert.ok(!fs.existsSync(path.dirname(sock)), 'the socket directory is removed at the end');
});

test('the same check finds gRPC on TCP: a coordinator bound to 127.0.0.1 and its worker', async () => {
  const coordinator = start('coordinator', ['coordinator', '--config', cfgFile, '--workers', '2', '--output', path.join(root, 'tcp-out'), '--bind', '127.0.0.1:0'], { ONELORA_JOB_TOKEN: TOKEN });
  let worker: ReturnType<typeof start> | null = null;
  try {
    assert.ok(await until(() => /coordinator listening on port \d+/.test(coordinator.stderr()), 60_000), coordinator.stderr());
    const grpcPort = Number(/coordinator listening on port (\d+)/.exec(coordinator.stderr())![1]);
    worker = start('worker', ['worker', '--coordinator', `127.0.0.1:${grpcPort}`, '--rank', '0', '--zmq-port', '0', '--backend', 'wasm'], { ONELORA_JOB_TOKEN: TOKEN });
    const w = worker;
    // registered: the worker waits for its group with a gRPC connection open to the coordinator
    assert.ok(await until(() => tcpSockets(w.child.pid!).some((s) => s.remote === grpcPort) && zmqPortsIn(w.stderr()).size === 1, 60_000), w.stderr());
    const zmq = zmqPortsIn(w.stderr());
    const found = [...strays(sample('coordinator', coordinator.child.pid!), zmq), ...strays(sample('worker', w.child.pid!), zmq)];
    assert.ok(found.includes(`coordinator (pid ${coordinator.child.pid}): listens on port ${grpcPort}`), found.join('\n'));
    assert.ok(found.some((f) => f.startsWith('worker') && f.endsWith(`-> ${grpcPort}`)), found.join('\n'));
  } finally {
    worker?.child.kill('SIGKILL');
    coordinator.child.kill('SIGKILL');
    await Promise.all([coordinator.exit, worker?.exit]);
  }
});
