#!/usr/bin/python3
"""Golden fixtures for RoPE scaling (Llama 3.1+ `llama3`, `linear`, dynamic NTK): inv_freq and the
cos/sin tables of several configs, and a tiny LLaMA checkpoint with `llama3` scaling and an explicit
`head_dim`, with the logits of an independent reference forward.

Run with Debian's torch:  /usr/bin/python3 scripts/make-rope-fixtures.py

The frequencies are written from the formulas of Hugging Face transformers' modeling_rope_utils.py
(_compute_default_rope_parameters, _compute_linear_scaling_rope_parameters,
_compute_dynamic_ntk_parameters with seq_len = the forward's length, _compute_llama3_parameters)
in float64 torch; they share no code with src/nn/rope.ts. The checkpoint writer and the LLaMA
blocks are those of scripts/make-fixtures.py.
"""
import importlib.util
import json
import math
import os

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('make_fixtures', os.path.join(HERE, 'make-fixtures.py'))
mf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mf)


def inv_freq(hd, theta, scaling, max_pos, seq_len):
    rope_type = (scaling or {}).get('rope_type', (scaling or {}).get('type', 'default'))
    base = theta
    if rope_type == 'dynamic' and seq_len > max_pos:
        f = scaling['factor']
        base = theta * ((f * seq_len / max_pos) - (f - 1)) ** (hd / (hd - 2))
    inv = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    if rope_type == 'linear':
        inv = inv / scaling['factor']
    if rope_type == 'llama3':
        f, lo, hi = scaling['factor'], scaling['low_freq_factor'], scaling['high_freq_factor']
        old = scaling['original_max_position_embeddings']
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / lo, inv / f, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / f + smooth * scaled
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        inv = torch.where(medium, smoothed, scaled)
    return inv


def cos_sin(inv, seq_len):
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


LLAMA31 = {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
           'original_max_position_embeddings': 8192}  # meta-llama/Llama-3.1-8B config.json
TINY3 = {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
         'original_max_position_embeddings': 32}
TABLES = [
    ('llama3.1-8b', 128, 500000.0, LLAMA31, 131072, 16),
    ('llama3-tiny', 16, 10000.0, TINY3, 128, 64),
    ('linear', 16, 10000.0, {'type': 'linear', 'factor': 4.0}, 128, 64),
    ('dynamic-within', 16, 10000.0, {'type': 'dynamic', 'factor': 2.0}, 32, 20),
    ('dynamic-beyond', 16, 10000.0, {'type': 'dynamic', 'factor': 2.0}, 32, 48),
]


def llama_forward(c, W, ids, inv):
    """logits [B, T, V] in float64 with the given inv_freq and the config's head_dim."""
    B, T = ids.shape
    H, KV, hd, eps = c['num_attention_heads'], c['num_key_value_heads'], c['head_dim'], c['rms_norm_eps']
    cos, sin = cos_sin(inv, T)
    causal = torch.full((T, T), float('-inf'), dtype=torch.float64).triu(1)
    x = W['model.embed_tokens.weight'][ids]
    for i in range(c['num_hidden_layers']):
        p = f'model.layers.{i}'
        h = mf.rms_norm(x, W[f'{p}.input_layernorm.weight'], eps)
        q = (h @ W[f'{p}.self_attn.q_proj.weight'].T).view(B, T, H, hd).transpose(1, 2)
        k = (h @ W[f'{p}.self_attn.k_proj.weight'].T).view(B, T, KV, hd).transpose(1, 2)
        v = (h @ W[f'{p}.self_attn.v_proj.weight'].T).view(B, T, KV, hd).transpose(1, 2)
        q = q * cos + mf.rotate_half(q) * sin
        k = (k * cos + mf.rotate_half(k) * sin).repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + causal, dim=-1) @ v
        x = x + a.transpose(1, 2).reshape(B, T, H * hd) @ W[f'{p}.self_attn.o_proj.weight'].T
        h = mf.rms_norm(x, W[f'{p}.post_attention_layernorm.weight'], eps)
        x = x + (F.silu(h @ W[f'{p}.mlp.gate_proj.weight'].T) * (h @ W[f'{p}.mlp.up_proj.weight'].T)) @ W[f'{p}.mlp.down_proj.weight'].T
    return mf.rms_norm(x, W['model.norm.weight'], eps) @ W['lm_head.weight'].T


def make_model():
    """head_dim 16 over hidden 32 / 4 heads (q_proj is [64, 32]), GQA 4 over 2, llama3 scaling."""
    c = dict(mf.LLAMA, num_key_value_heads=2, head_dim=16, rope_scaling=TINY3)
    D, I, H, KV, hd = c['hidden_size'], c['intermediate_size'], c['num_attention_heads'], c['num_key_value_heads'], c['head_dim']
    t = {'model.embed_tokens.weight': torch.randn(c['vocab_size'], D), 'model.norm.weight': 1 + 0.1 * torch.randn(D),
         'lm_head.weight': mf.rand_linear(c['vocab_size'], D)[0]}
    for i in range(c['num_hidden_layers']):
        p = f'model.layers.{i}'
        t[f'{p}.input_layernorm.weight'] = 1 + 0.1 * torch.randn(D)
        t[f'{p}.post_attention_layernorm.weight'] = 1 + 0.1 * torch.randn(D)
        for n, (o, k) in {'q_proj': (H * hd, D), 'k_proj': (KV * hd, D), 'v_proj': (KV * hd, D), 'o_proj': (D, H * hd)}.items():
            t[f'{p}.self_attn.{n}.weight'] = mf.rand_linear(o, k)[0]
        for n, (o, k) in {'gate_proj': (I, D), 'up_proj': (I, D), 'down_proj': (D, I)}.items():
            t[f'{p}.mlp.{n}.weight'] = mf.rand_linear(o, k)[0]
    mf.save_dir('llama-rope-llama3', c, t)
    W = {k: mf.stored(v, 'F32') for k, v in t.items()}
    ids = torch.randint(0, c['vocab_size'], (2, 40))
    out = {'input_ids': ids.tolist()}
    # The same weights under three RoPEs: the checkpoint's llama3, dynamic NTK past max_position_embeddings, plain.
    variants = {'llama3': (TINY3, c['max_position_embeddings']), 'dynamic': ({'type': 'dynamic', 'factor': 2.0}, 32), 'plain': (None, 128)}
    for name, (scaling, max_pos) in variants.items():
        out[f'logits_{name}'] = llama_forward(c, W, ids, inv_freq(hd, 10000.0, scaling, max_pos, 40)).flatten().tolist()
    return out


def main():
    torch.manual_seed(0)
    tables = []
    for name, hd, theta, scaling, max_pos, seq_len in TABLES:
        inv = inv_freq(hd, theta, scaling, max_pos, seq_len)
        cos, sin = cos_sin(inv, seq_len)
        tables.append({'name': name, 'head_dim': hd, 'rope_theta': theta, 'rope_scaling': scaling, 'max_position_embeddings': max_pos,
                       'seq_len': seq_len, 'inv_freq': inv.tolist(), 'cos': cos.flatten().tolist(), 'sin': sin.flatten().tolist()})
    expected = {'tables': tables, 'model': make_model()}
    with open(os.path.join(mf.OUT, 'rope.json'), 'w') as f:
        json.dump(expected, f)
    print('wrote', os.path.join(mf.OUT, 'rope.json'))


if __name__ == '__main__':
    main()
