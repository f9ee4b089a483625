#!/usr/bin/python3
"""Writes test/fixtures/optim/adamw.json: AdamW updates, gradient clipping and the learning-rate
schedule as PyTorch computes them, for test/train/optimizer.test.ts to check onelora's optimizer
against.

Run with Debian's torch (apt install python3-torch): /usr/bin/python3 scripts/make-optim-fixture.py

Each case trains two float32 parameter tensors, "w" (weight-decayed) and "norm" (no decay, as
onelora's noDecay keys), in two param groups of one torch.optim.AdamW, for a fixed sequence of
gradients. Per step: torch.nn.utils.clip_grad_norm_ over both (when the case clips), then
optimizer.step() at the rate torch.optim.lr_scheduler.LambdaLR gives, then scheduler.step().

The schedule is written here from its definition, not from onelora's code: linear warm-up from 0
(step / warmup, so the first update has lr 0, as transformers' get_*_schedule_with_warmup), then
cosine or linear decay from base_lr to base_lr * min_lr_ratio over total_steps - warmup steps,
staying at the floor after total_steps. 'constant' is base_lr after the warm-up.
"""
import json
import math
import pathlib

import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / 'test' / 'fixtures' / 'optim' / 'adamw.json'

CASES = [
    dict(name='cosine-warmup-clip', schedule='cosine', base_lr=1e-2, warmup=3, total=12, min_lr_ratio=0.0,
         betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, grad_clip=1.0, steps=12),
    # Two steps past total_steps: the rate stays at the floor.
    dict(name='linear-floor-clip', schedule='linear', base_lr=3e-3, warmup=2, total=8, min_lr_ratio=0.1,
         betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, grad_clip=0.5, steps=10),
    dict(name='cosine-floor-noclip', schedule='cosine', base_lr=5e-2, warmup=0, total=9, min_lr_ratio=0.1,
         betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, grad_clip=0.0, steps=9),
    dict(name='constant-no-decay', schedule='constant', base_lr=1e-3, warmup=1, total=6, min_lr_ratio=0.0,
         betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, grad_clip=2.0, steps=6),
]

SHAPES = {'w': (3, 4), 'norm': (5,)}


def lr_factor(case, step):
    """The learning rate at 0-based optimizer step `step`, as a fraction of base_lr."""
    warmup, total = case['warmup'], case['total']
    if warmup > 0 and step < warmup:
        return step / warmup
    if case['schedule'] == 'constant':
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    shape = 1.0 - progress if case['schedule'] == 'linear' else 0.5 * (1.0 + math.cos(math.pi * progress))
    floor = case['min_lr_ratio']
    return floor + (1.0 - floor) * shape


def f32_list(t):
    return [float(x) for x in t.detach().reshape(-1).to(torch.float32).tolist()]


def run(case, seed):
    gen = torch.Generator().manual_seed(seed)
    params = {k: torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float32)) for k, s in SHAPES.items()}
    opt = torch.optim.AdamW(
        [{'params': [params['w']], 'weight_decay': case['weight_decay']}, {'params': [params['norm']], 'weight_decay': 0.0}],
        lr=case['base_lr'], betas=case['betas'], eps=case['eps'], foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(case, s))
    initial = {k: f32_list(p) for k, p in params.items()}
    steps = []
    for t in range(case['steps']):
        # Gradient scales from 0.05 to ~4: some steps are clipped, some are not.
        scale = 0.05 * (1.6 ** t) if t % 2 == 0 else 1.5 / (t + 1)
        grads = {k: (torch.randn(s, generator=gen, dtype=torch.float32) * scale).to(torch.float32) for k, s in SHAPES.items()}
        for k, p in params.items():
            p.grad = grads[k].clone()
        lr = opt.param_groups[0]['lr']
        norm = None
        if case['grad_clip'] > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(list(params.values()), case['grad_clip']))
        opt.step()
        sched.step()
        steps.append({
            'grad': {k: f32_list(g) for k, g in grads.items()},
            'lr': lr,
            'grad_norm': norm,
            'params': {k: f32_list(p) for k, p in params.items()},
        })
    state = {k: {'exp_avg': f32_list(opt.state[p]['exp_avg']), 'exp_avg_sq': f32_list(opt.state[p]['exp_avg_sq'])} for k, p in params.items()}
    return {'initial': initial, 'steps': steps, 'final_state': state}


def main():
    out = {
        'about': 'made by scripts/make-optim-fixture.py with torch.optim.AdamW, clip_grad_norm_ and LambdaLR',
        'torch': torch.__version__,
        'order': list(SHAPES),
        'no_decay': ['norm'],
        'cases': [],
    }
    for i, case in enumerate(CASES):
        spec = {k: (list(v) if isinstance(v, tuple) else v) for k, v in case.items()}
        out['cases'].append({**spec, **run(case, 100 + i)})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + '\n')
    print(f'{OUT}: {len(out["cases"])} cases')


if __name__ == '__main__':
    main()
