#!/usr/bin/python3
"""Golden fixtures for test/models/: tiny random LLaMA and ViT checkpoints in Hugging Face layout
(config.json + safetensors) and the outputs of an independent reference forward.

Run with Debian's torch (docs/architecture.md#what-is-checked-where):  /usr/bin/python3 scripts/make-fixtures.py

The reference forwards below are written from the equations of Hugging Face transformers'
modeling_llama.py and modeling_vit.py (RMSNorm, rotate_half RoPE, repeat_kv, SwiGLU; conv patch
embedding, pre-LN blocks, exact GELU), in float64, in plain torch. They share no code with the
TypeScript models. safetensors files are written by hand (the format is a JSON header and raw
little-endian data), since the safetensors package is not installed here.
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'models')
DT = {'F32': np.float32, 'F16': np.float16}


def write_safetensors(path, tensors, dtype='F32'):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name].detach().numpy().astype(DT[dtype]))
        b = arr.tobytes()
        header[name] = {'dtype': dtype, 'shape': list(arr.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header['__metadata__'] = {'format': 'pt'}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def stored(t, dtype):
    """What a loader sees after the file round trip, widened to float64 for the reference."""
    return torch.from_numpy(t.detach().numpy().astype(DT[dtype]).astype(np.float64))


def save_dir(name, config, tensors, dtype='F32', shards=1, extra=None):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2)
    for fname, content in (extra or {}).items():
        with open(os.path.join(d, fname), 'w') as f:
            json.dump(content, f, indent=2)
    if shards == 1:
        write_safetensors(os.path.join(d, 'model.safetensors'), tensors, dtype)
        return
    names = sorted(tensors)
    weight_map = {}
    for s in range(shards):
        part = names[s::shards]
        fname = f'model-{s + 1:05d}-of-{shards:05d}.safetensors'
        write_safetensors(os.path.join(d, fname), {n: tensors[n] for n in part}, dtype)
        weight_map.update({n: fname for n in part})
    with open(os.path.join(d, 'model.safetensors.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': 0}, 'weight_map': weight_map}, f, indent=2)


def rand_linear(out_f, in_f, bias=False):
    w = torch.randn(out_f, in_f) / math.sqrt(in_f)
    return (w, 0.1 * torch.randn(out_f)) if bias else (w, None)


# ---------------------------------------------------------------- LLaMA

def llama_tensors(c):
    D, I, H, KV = c['hidden_size'], c['intermediate_size'], c['num_attention_heads'], c['num_key_value_heads']
    hd = D // H
    t = {'model.embed_tokens.weight': torch.randn(c['vocab_size'], D), 'model.norm.weight': 1 + 0.1 * torch.randn(D)}
    for i in range(c['num_hidden_layers']):
        p = f'model.layers.{i}'
        t[f'{p}.input_layernorm.weight'] = 1 + 0.1 * torch.randn(D)
        t[f'{p}.post_attention_layernorm.weight'] = 1 + 0.1 * torch.randn(D)
        for n, (o, k) in {'q_proj': (H * hd, D), 'k_proj': (KV * hd, D), 'v_proj': (KV * hd, D), 'o_proj': (D, H * hd)}.items():
            t[f'{p}.self_attn.{n}.weight'] = rand_linear(o, k)[0]
        for n, (o, k) in {'gate_proj': (I, D), 'up_proj': (I, D), 'down_proj': (D, I)}.items():
            t[f'{p}.mlp.{n}.weight'] = rand_linear(o, k)[0]
    if not c.get('tie_word_embeddings', False):
        t['lm_head.weight'] = rand_linear(c['vocab_size'], D)[0]
    return t


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def llama_forward(c, W, ids):
    """logits [B, T, V] in float64, recomputing the whole sequence (no cache)."""
    B, T = ids.shape
    D, H, KV = c['hidden_size'], c['num_attention_heads'], c['num_key_value_heads']
    hd, eps, theta = D // H, c['rms_norm_eps'], c.get('rope_theta', 10000.0)
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    causal = torch.full((T, T), float('-inf'), dtype=torch.float64).triu(1)
    x = W['model.embed_tokens.weight'][ids]
    for i in range(c['num_hidden_layers']):
        p = f'model.layers.{i}'
        h = rms_norm(x, W[f'{p}.input_layernorm.weight'], eps)
        q = (h @ W[f'{p}.self_attn.q_proj.weight'].T).view(B, T, H, hd).transpose(1, 2)
        k = (h @ W[f'{p}.self_attn.k_proj.weight'].T).view(B, T, KV, hd).transpose(1, 2)
        v = (h @ W[f'{p}.self_attn.v_proj.weight'].T).view(B, T, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)  # repeat_kv: each kv head serves H/KV consecutive heads
        v = v.repeat_interleave(H // KV, dim=1)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + causal, dim=-1) @ v
        x = x + a.transpose(1, 2).reshape(B, T, H * hd) @ W[f'{p}.self_attn.o_proj.weight'].T
        h = rms_norm(x, W[f'{p}.post_attention_layernorm.weight'], eps)
        g = F.silu(h @ W[f'{p}.mlp.gate_proj.weight'].T) * (h @ W[f'{p}.mlp.up_proj.weight'].T)
        x = x + g @ W[f'{p}.mlp.down_proj.weight'].T
    x = rms_norm(x, W['model.norm.weight'], eps)
    head = W['model.embed_tokens.weight'] if c.get('tie_word_embeddings', False) else W['lm_head.weight']
    return x @ head.T


def make_llama(name, c, dtype='F32', shards=1, extra_keys=False):
    tensors = llama_tensors(c)
    W = {k: stored(v, dtype) for k, v in tensors.items()}
    if extra_keys:  # what real checkpoints carry and loaders must ignore
        hd = c['hidden_size'] // c['num_attention_heads']
        tensors['model.layers.0.self_attn.rotary_emb.inv_freq'] = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
    save_dir(name, c, tensors, dtype, shards)
    V = c['vocab_size']
    ids = torch.randint(0, V, (2, 7))
    labels = ids.clone()
    labels[0, :3] = -100  # a prompt
    labels[1, 5] = -100
    logits = llama_forward(c, W, ids)
    lsum = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100, reduction='sum')
    seq, greedy = [1, 5, 9], []
    for _ in range(6):
        nxt = int(llama_forward(c, W, torch.tensor([seq])).argmax(-1)[0, -1])
        greedy.append(nxt)
        seq.append(nxt)
    return {'input_ids': ids.tolist(), 'labels': labels.tolist(), 'logits': logits.flatten().tolist(),
            'loss_sum': float(lsum), 'greedy_prompt': [1, 5, 9], 'greedy': greedy}


LLAMA = {'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'hidden_act': 'silu', 'vocab_size': 64,
         'hidden_size': 32, 'intermediate_size': 48, 'num_hidden_layers': 2, 'num_attention_heads': 4,
         'max_position_embeddings': 128, 'rms_norm_eps': 1e-5, 'bos_token_id': 1, 'eos_token_id': 2}


# ---------------------------------------------------------------- ViT

def vit_tensors(c, prefix='vit.', head=True):
    D, I, P, C = c['hidden_size'], c['intermediate_size'], c['patch_size'], c['num_channels']
    n = (c['image_size'] // P) ** 2
    e = f'{prefix}embeddings'
    t = {f'{e}.cls_token': torch.randn(1, 1, D), f'{e}.position_embeddings': torch.randn(1, n + 1, D),
         f'{e}.patch_embeddings.projection.weight': torch.randn(D, C, P, P) / math.sqrt(C * P * P),
         f'{e}.patch_embeddings.projection.bias': 0.1 * torch.randn(D),
         f'{prefix}layernorm.weight': 1 + 0.1 * torch.randn(D), f'{prefix}layernorm.bias': 0.1 * torch.randn(D)}
    if c.get('num_register_tokens', 0):
        t[f'{e}.register_tokens'] = torch.randn(1, c['num_register_tokens'], D)
    for i in range(c['num_hidden_layers']):
        p = f'{prefix}encoder.layer.{i}'
        for n_, (o, k) in {'attention.attention.query': (D, D), 'attention.attention.key': (D, D), 'attention.attention.value': (D, D),
                           'attention.output.dense': (D, D), 'intermediate.dense': (I, D), 'output.dense': (D, I)}.items():
            t[f'{p}.{n_}.weight'], t[f'{p}.{n_}.bias'] = rand_linear(o, k, bias=True)
        for n_ in ('layernorm_before', 'layernorm_after'):
            t[f'{p}.{n_}.weight'], t[f'{p}.{n_}.bias'] = 1 + 0.1 * torch.randn(D), 0.1 * torch.randn(D)
        if 'layerscale_value' in c:
            t[f'{p}.layer_scale1.lambda1'] = 0.5 + 0.1 * torch.randn(D)
            t[f'{p}.layer_scale2.lambda1'] = 0.5 + 0.1 * torch.randn(D)
    t[f'{prefix}pooler.dense.weight'], t[f'{prefix}pooler.dense.bias'] = rand_linear(D, D, bias=True)  # unused: ignored
    if head:
        t['classifier.weight'], t['classifier.bias'] = rand_linear(c['num_labels'], D, bias=True)
    return t


def vit_forward(c, W, pixels_nhwc, prefix='vit.'):
    """Final-LayerNorm features [B, T, D] in float64 (positions resized bilinearly when needed)."""
    D, H, P, eps = c['hidden_size'], c['num_attention_heads'], c['patch_size'], c['layer_norm_eps']
    hd = D // H
    e = f'{prefix}embeddings'
    px = pixels_nhwc.permute(0, 3, 1, 2)
    x = F.conv2d(px, W[f'{e}.patch_embeddings.projection.weight'], W[f'{e}.patch_embeddings.projection.bias'], stride=P)
    B, _, gh, gw = x.shape
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat((W[f'{e}.cls_token'].expand(B, -1, -1), x), dim=1)
    pos = W[f'{e}.position_embeddings']
    n = pos.shape[1] - 1
    if n != gh * gw:
        g = int(round(math.sqrt(n)))
        grid = pos[:, 1:].reshape(1, g, g, D).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode='bilinear', align_corners=False)
        pos = torch.cat((pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, D)), dim=1)
    x = x + pos
    if c.get('num_register_tokens', 0):
        x = torch.cat((x[:, :1], W[f'{e}.register_tokens'].expand(B, -1, -1), x[:, 1:]), dim=1)
    T = x.shape[1]
    lin = lambda h, n_: h @ W[f'{n_}.weight'].T + W[f'{n_}.bias']  # noqa: E731
    for i in range(c['num_hidden_layers']):
        p = f'{prefix}encoder.layer.{i}'
        h = F.layer_norm(x, (D,), W[f'{p}.layernorm_before.weight'], W[f'{p}.layernorm_before.bias'], eps)
        q, k, v = (lin(h, f'{p}.attention.attention.{n_}').view(B, T, H, hd).transpose(1, 2) for n_ in ('query', 'key', 'value'))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
        a = lin(a.transpose(1, 2).reshape(B, T, D), f'{p}.attention.output.dense')
        if 'layerscale_value' in c:
            a = a * W[f'{p}.layer_scale1.lambda1']
        x = x + a
        h = F.layer_norm(x, (D,), W[f'{p}.layernorm_after.weight'], W[f'{p}.layernorm_after.bias'], eps)
        m = lin(F.gelu(lin(h, f'{p}.intermediate.dense')), f'{p}.output.dense')
        if 'layerscale_value' in c:
            m = m * W[f'{p}.layer_scale2.lambda1']
        x = x + m
    return F.layer_norm(x, (D,), W[f'{prefix}layernorm.weight'], W[f'{prefix}layernorm.bias'], eps)


VIT = {'architectures': ['ViTForImageClassification'], 'model_type': 'vit', 'hidden_act': 'gelu', 'hidden_size': 32,
       'intermediate_size': 64, 'num_hidden_layers': 2, 'num_attention_heads': 4, 'image_size': 16, 'patch_size': 4,
       'num_channels': 3, 'layer_norm_eps': 1e-12, 'qkv_bias': True, 'num_labels': 5,
       'id2label': {str(i): n for i, n in enumerate(['ant', 'bee', 'cat', 'dog', 'eel'])}}
PREPROCESSOR = {'image_processor_type': 'ViTImageProcessor', 'do_resize': True, 'size': {'height': 16, 'width': 16},
                'resample': 2, 'do_rescale': True, 'rescale_factor': 1 / 255, 'do_normalize': True,
                'image_mean': [0.5, 0.5, 0.5], 'image_std': [0.5, 0.5, 0.5]}


def make_vit():
    c = dict(VIT, label2id={n: i for i, n in enumerate(VIT['id2label'].values())})
    tensors = vit_tensors(c)
    W = {k: stored(v, 'F32') for k, v in tensors.items()}
    save_dir('vit', c, tensors, extra={'preprocessor_config.json': PREPROCESSOR})
    out = {}
    for key, (h, w) in {'native': (16, 16), 'resized': (24, 32)}.items():
        px = torch.randn(2, h, w, 3, dtype=torch.float64)
        feats = vit_forward(c, W, px)
        logits = feats[:, 0] @ W['classifier.weight'].T + W['classifier.bias']
        out[key] = {'pixels': px.flatten().tolist(), 'shape': [2, h, w, 3], 'logits': logits.flatten().tolist()}
    return out


def make_vit_dinov2ish():
    """Layer scale + register tokens, stored like a headless ViTModel (no `vit.` prefix, a pooler)."""
    c = dict(VIT, architectures=['ViTModel'], layerscale_value=1.0, num_register_tokens=2)
    del c['id2label'], c['num_labels']
    tensors = vit_tensors(c, prefix='', head=False)
    W = {k: stored(v, 'F32') for k, v in tensors.items()}
    save_dir('vit-registers', c, tensors)
    px = torch.randn(1, 16, 16, 3, dtype=torch.float64)
    return {'pixels': px.flatten().tolist(), 'shape': [1, 16, 16, 3], 'features': vit_forward(c, W, px, prefix='').flatten().tolist()}


def main():
    torch.manual_seed(0)
    expected = {
        'llama-gqa': make_llama('llama-gqa', dict(LLAMA, num_key_value_heads=2, rope_theta=500000.0), extra_keys=True),
        'llama-f16': make_llama('llama-f16', dict(LLAMA, num_key_value_heads=4), dtype='F16'),
        'llama-tied-sharded': make_llama('llama-tied-sharded', dict(LLAMA, num_key_value_heads=1, tie_word_embeddings=True), shards=2),
        'vit': make_vit(),
        'vit-registers': make_vit_dinov2ish(),
    }
    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(expected, f)
    print('wrote', OUT)


if __name__ == '__main__':
    main()
