#!/usr/bin/python3
"""PyTorch reference for `onelora bench step`: the same LLaMA-shaped model (RMSNorm, RoPE in the
rotate_half form, causal attention, SwiGLU, untied head) and the same step (forward, backward,
AdamW) on the CPU with one thread. Not a dependency of onelora: run it with Debian's python3-torch
and libopenblas0-pthread (`/usr/bin/python3 scripts/bench-torch-step.py --json`).

Methods: 1lora (W0 x + b·(1ᵀx)), bitfit (W0 x + β), lora (r=1, s=2), all (full fine-tuning);
every linear but the head is a target, as `all-linear` in onelora. Prints one JSON object with the
fields onelora prints: step_s, tokens_per_s, peak_bytes (null: PyTorch's CPU allocator has no
peak counter), trainable.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Linear(nn.Module):
    """A frozen y = x W0ᵀ plus the method's delta (the paper's equations, as onelora's src/peft)."""

    def __init__(self, k, d, method):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d, k) * 0.02, requires_grad=method == 'all')
        self.method = method
        if method == '1lora':
            self.b = nn.Parameter(torch.zeros(d))
        elif method == 'bitfit':
            self.bias = nn.Parameter(torch.zeros(d))
        elif method == 'lora':
            self.A = nn.Parameter(torch.empty(1, k).uniform_(-1 / math.sqrt(k), 1 / math.sqrt(k)))
            self.B = nn.Parameter(torch.zeros(d, 1))

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.method == '1lora':
            return y + x.sum(-1, keepdim=True) * self.b
        if self.method == 'bitfit':
            return y + self.bias
        if self.method == 'lora':
            return y + 2.0 * F.linear(F.linear(x, self.A), self.B)
        return y


class RMSNorm(nn.Module):
    def __init__(self, d, trainable):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d), requires_grad=trainable)

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight


def rope(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class Block(nn.Module):
    def __init__(self, a, method):
        super().__init__()
        d, f, full = a.dim, a.ffn, method == 'all'
        self.h = a.heads
        self.n1, self.n2 = RMSNorm(d, full), RMSNorm(d, full)
        self.q, self.k, self.v, self.o = (Linear(d, d, method) for _ in range(4))
        self.gate, self.up, self.down = Linear(d, f, method), Linear(d, f, method), Linear(f, d, method)

    def forward(self, x, cos, sin, mask):
        b, t, d = x.shape
        hd = d // self.h
        n = self.n1(x)
        split = lambda y: y.view(b, t, self.h, hd).transpose(1, 2)  # [B, T, D] -> [B, H, T, hd]
        q, k, v = rope(split(self.q(n)), cos, sin), rope(split(self.k(n)), cos, sin), split(self.v(n))
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1)
        x = x + self.o((p @ v).transpose(1, 2).reshape(b, t, d))
        n = self.n2(x)
        return x + self.down(F.silu(self.gate(n)) * self.up(n))


class Llama(nn.Module):
    def __init__(self, a, method):
        super().__init__()
        full = method == 'all'
        self.embed = nn.Parameter(torch.randn(a.vocab, a.dim) * 0.02, requires_grad=full)
        self.blocks = nn.ModuleList(Block(a, method) for _ in range(a.layers))
        self.norm = RMSNorm(a.dim, full)
        self.head = nn.Parameter(torch.randn(a.vocab, a.dim) * 0.02, requires_grad=full)
        hd = a.dim // a.heads
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.outer(torch.arange(a.seq).float(), inv)
        emb = torch.cat([ang, ang], dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()
        self.mask = torch.full((a.seq, a.seq), -1e9).triu(1)

    def loss(self, ids):
        x = self.embed[ids]
        for blk in self.blocks:
            x = blk(x, self.cos, self.sin, self.mask)
        logits = F.linear(self.norm(x)[:, :-1], self.head)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    for name, default in [('vocab', 512), ('dim', 256), ('layers', 4), ('heads', 4), ('ffn', 688), ('seq', 128), ('batch', 8), ('reps', 5)]:
        ap.add_argument(f'--{name}', type=int, default=default)
    ap.add_argument('--method', default='1lora', choices=['1lora', 'bitfit', 'lora', 'lora:r=1', 'all'])
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()
    method = 'lora' if a.method == 'lora:r=1' else a.method
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Llama(a, method)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    times = []
    for i in range(a.reps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        model.loss(ids).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if i > 0:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    out = {
        'framework': f'torch {torch.__version__}', 'threads': a.threads, 'method': a.method, 'step_s': round(step, 4),
        'tokens_per_s': round(a.batch * a.seq / step), 'peak_bytes': None, 'trainable': sum(p.numel() for p in params),
    }
    print(json.dumps(out) if a.json else json.dumps(out, indent=2))


if __name__ == '__main__':
    main()
