// Network namespaces for fault tests: a private L2 segment per test, so partitions (iptables DROP)
// and slow links (tbf: this kernel has no netem) touch nothing but the test's own hosts. A hub
// namespace holds a bridge (10.77.0.1, where the coordinator listens) and each host namespace one
// veth end on it (10.77.0.2, .3, …). Every rule lives inside the test's namespaces: the machine's
// own network is never changed, and deleting the namespaces removes everything.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

export interface Net {
  /** The hub's name and address (the coordinator's host). */
  hub: Host;
  hosts: Host[];
  /** Drops every packet of `host` (both directions, loopback excepted) until `heal`. */
  partition(host: Host): void;
  heal(host: Host): void;
  /** Rate-limits `host`'s link both ways with a token bucket (tc tbf), e.g. '256kbit'. */
  limit(host: Host, rate: string): void;
  /** Deletes the namespaces (and with them their veths, bridge and rules). */
  destroy(): void;
}

export interface Host {
  ns: string;
  ip: string;
  /** The device on the host's side (for tc), and the bridge port on the hub's side. */
  dev: string;
  port: string;
  /** Starts `argv` inside this host's namespace. */
  spawn(argv: string[], env: NodeJS.ProcessEnv): ChildProcess;
}

function sh(args: string[]): void {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
}

const inNs = (ns: string, args: string[]): void => sh(['ip', 'netns', 'exec', ns, ...args]);

/** Why namespaces cannot be made here (not root, no `ip`, no iptables), or null when they can. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  for (const tool of ['ip', 'iptables', 'tc']) {
    if (spawnSync(tool, ['-V'], { encoding: 'utf8' }).error) return `${tool} is not installed (iproute2, iptables)`;
  }
  const probe = `olprobe${process.pid % 100000}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `ip netns add failed: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return null;
}

/** A hub and `n` hosts; names carry this process's pid so parallel tests never collide. */
export function makeNet(n: number): Net {
  const tag = `ol${process.pid % 100000}`;
  const made: string[] = [];
  const hubNs = `${tag}h`;
  const host = (ns: string, ip: string, dev: string, port: string): Host => ({
    ns, ip, dev, port,
    spawn: (argv, env) => spawn('ip', ['netns', 'exec', ns, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
  });
  const destroy = (): void => {
    for (const ns of made.splice(0)) spawnSync('ip', ['netns', 'del', ns]);
  };
  process.once('exit', destroy);
  try {
    sh(['ip', 'netns', 'add', hubNs]);
    made.push(hubNs);
    inNs(hubNs, ['ip', 'link', 'set', 'lo', 'up']);
    inNs(hubNs, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    inNs(hubNs, ['ip', 'addr', 'add', '10.77.0.1/24', 'dev', 'br0']);
    inNs(hubNs, ['ip', 'link', 'set', 'br0', 'up']);
    const hosts: Host[] = [];
    for (let i = 0; i < n; i++) {
      const ns = `${tag}w${i}`;
      sh(['ip', 'netns', 'add', ns]);
      made.push(ns);
      const ip = `10.77.0.${i + 2}`;
      // Created inside the hub, one end moved out: the names only exist inside these namespaces.
      inNs(hubNs, ['ip', 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0']);
      inNs(hubNs, ['ip', 'link', 'set', 'eth0', 'netns', ns]);
      inNs(hubNs, ['ip', 'link', 'set', `p${i}`, 'master', 'br0']);
      inNs(hubNs, ['ip', 'link', 'set', `p${i}`, 'up']);
      inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
      inNs(ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']);
      hosts.push(host(ns, ip, 'eth0', `p${i}`));
    }
    const hub = host(hubNs, '10.77.0.1', 'br0', 'br0');
    return {
      hub, hosts, destroy,
      partition(h) {
        for (const chain of ['INPUT', 'OUTPUT']) inNs(h.ns, ['iptables', '-A', chain, ...(chain === 'INPUT' ? ['-i'] : ['-o']), h.dev, '-j', 'DROP']);
      },
      heal(h) {
        for (const chain of ['INPUT', 'OUTPUT']) inNs(h.ns, ['iptables', '-F', chain]);
      },
      limit(h, rate) {
        // Egress of the host and of its bridge port: both directions of the link.
        inNs(h.ns, ['tc', 'qdisc', 'add', 'dev', h.dev, 'root', 'tbf', 'rate', rate, 'burst', '16kb', 'latency', '5s']);
        inNs(hubNs, ['tc', 'qdisc', 'add', 'dev', h.port, 'root', 'tbf', 'rate', rate, 'burst', '16kb', 'latency', '5s']);
      },
    };
  } catch (err) {
    destroy();
    throw err;
  }
}
