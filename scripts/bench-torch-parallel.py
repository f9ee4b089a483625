#!/usr/bin/env python3
"""The matmul ceiling of `onelora bench scaling`, measured with PyTorch as an independent reference.

One process multiplies two n×n float32 matrices on one thread (OpenBLAS) for --seconds; then N
processes do the same at once. The sum of their GFLOP/s over the single figure is how much N
processes can gain on this machine at all. On a VM whose vCPUs are SMT siblings of one physical
core it stays near 1 for vector code, whatever the framework.

Run with Debian's python3-torch (not a dependency of onelora):
  /usr/bin/python3 scripts/bench-torch-parallel.py --procs 2 --json
"""
import argparse
import json
import multiprocessing as mp
import time


def worker(n, seconds, start, out):
    import torch
    torch.set_num_threads(1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    start.wait()
    t0, reps = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    out.put(2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9)


def together(procs, n, seconds):
    start, out = mp.Event(), mp.Queue()
    ps = [mp.Process(target=worker, args=(n, seconds, start, out)) for _ in range(procs)]
    for p in ps:
        p.start()
    time.sleep(2.0)  # every process has imported torch and warmed up
    start.set()
    total = sum(out.get() for _ in ps)
    for p in ps:
        p.join()
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--procs', type=int, default=2)
    ap.add_argument('--n', type=int, default=1024)
    ap.add_argument('--seconds', type=float, default=6.0)
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()
    import torch
    one = together(1, a.n, a.seconds)
    many = together(a.procs, a.n, a.seconds)
    r = {'framework': f'torch {torch.__version__}', 'n': a.n, 'procs': a.procs, 'gflops_1': round(one, 2),
         f'gflops_{a.procs}': round(many, 2), 'speedup': round(many / one, 3)}
    print(json.dumps(r) if a.json else '\n'.join(f'{k}: {v}' for k, v in r.items()))


if __name__ == '__main__':
    main()
