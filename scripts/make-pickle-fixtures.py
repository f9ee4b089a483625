#!/usr/bin/python3
"""Pickle checkpoint fixtures for test/checkpoint/pickle.test.ts: real torch.save files, small.

Run with Debian's torch:  /usr/bin/python3 scripts/make-pickle-fixtures.py

Writes test/fixtures/pickle/:
  tensors.pt, tensors-proto4.pt  an OrderedDict state dict (F32/F16/BF16/I64, a transposed view, a
                                 sliced view with an offset, an expanded stride-0 view, views that
                                 share one storage, an nn.Parameter, a 0-d tensor), pickle protocol
                                 2 (torch.save's default) and 4; tensors.json holds every value as
                                 torch reads it back, widened to float64.
  legacy.pt                      the same, in the pre-1.6 non-zip format (refused with advice).
  not-a-state-dict.pt            {'weight': tensor, 'step': 3}: refused naming 'step'.
  big-endian.pt, deflated.pt,    tensors.pt re-zipped: with a `byteorder` record 'big' (refused), with
  zip64.pt                       every entry deflated, and with zip64 headers (as a > 4 GiB shard has).
  malicious.pt                   a zip whose data.pkl calls os.system (posix.system) through
                                 __reduce__: the payload would create onelora-pickle-payload-ran
                                 in the working directory.
  llama-f16/, llama-tied-sharded/  the tiny LLaMA fixtures of test/fixtures/models re-saved as
                                 pytorch_model.bin (F16) and as two .bin shards + pytorch_model.bin.index.json.
  lora-bin/, lora-safetensors/   one LoRA adapter for llama-gqa in PEFT's key layout, as the older
                                 PEFT adapter_model.bin and as adapter_model.safetensors (its twin).
  dit-train.pt.gz                a facebookresearch/DiT train.py checkpoint {model, ema, opt, args}
                                 whose `ema` is test/fixtures/dit/orig-f32.safetensors.gz and whose
                                 `model` is zeros (so loading the wrong one fails the golden forward).
safetensors files are read and written by hand (JSON header + raw little-endian data), since the
safetensors package is not installed here.
"""
import argparse
import importlib.util
import collections
import gzip
import json
import os
import shutil
import struct
import zipfile
import zlib

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures')
OUT = os.path.join(ROOT, 'pickle')
# The safetensors writer of scripts/make-fixtures.py, for the adapter's safetensors twin.
_spec = importlib.util.spec_from_file_location('make_fixtures', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'make-fixtures.py'))
_mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mf)
write_safetensors = _mf.write_safetensors
NP = {'F32': np.float32, 'F16': np.float16}


def read_safetensors(path):
    raw = open(path, 'rb').read()
    if path.endswith('.gz'):
        raw = gzip.decompress(raw)
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = collections.OrderedDict()
    for name in sorted(k for k in header if k != '__metadata__'):
        e = header[name]
        b, end = e['data_offsets']
        arr = np.frombuffer(raw[8 + n + b:8 + n + end], dtype=NP[e['dtype']]).reshape(e['shape'])
        out[name] = torch.from_numpy(arr.copy())
    return out


def fresh(d):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def tensors_dict():
    g = torch.Generator().manual_seed(18)
    base = torch.randn(3, 4, generator=g)
    shared = torch.randn(2, 3, generator=g)
    sd = collections.OrderedDict()
    sd['f32'] = torch.randn(2, 3, generator=g)
    sd['f16'] = torch.randn(4, generator=g).half()
    sd['bf16'] = torch.randn(2, 2, generator=g).bfloat16()
    sd['position_ids'] = torch.arange(5).view(1, 5)
    sd['base'] = base
    sd['transposed'] = base.t()
    sd['slice'] = base[1:, 1:3]
    sd['expanded'] = torch.randn(3, 1, generator=g).expand(3, 4)
    sd['shared_a'] = shared[0]
    sd['shared_b'] = shared[1]
    sd['param'] = torch.nn.Parameter(torch.randn(3, generator=g))
    sd['scalar'] = torch.tensor(1.5)
    sd._metadata = collections.OrderedDict([('', {'version': 1})])  # what Module.state_dict() attaches
    return sd


DTYPE = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.int64: 'I64'}


class Payload:
    def __reduce__(self):
        return (os.system, ('touch onelora-pickle-payload-ran',))


def make_tensors():
    sd = tensors_dict()
    torch.save(sd, os.path.join(OUT, 'tensors.pt'))
    torch.save(sd, os.path.join(OUT, 'tensors-proto4.pt'), pickle_protocol=4)
    torch.save(sd, os.path.join(OUT, 'legacy.pt'), _use_new_zipfile_serialization=False)
    back = torch.load(os.path.join(OUT, 'tensors.pt'))
    assert back['shared_a'].storage().data_ptr() == back['shared_b'].storage().data_ptr()
    assert not back['transposed'].is_contiguous() and back['slice'].storage_offset() == 5
    values = {k: {'dtype': DTYPE[v.dtype], 'shape': list(v.shape), 'values': v.detach().double().flatten().tolist()} for k, v in back.items()}
    with open(os.path.join(OUT, 'tensors.json'), 'w') as f:
        json.dump(values, f, indent=1)
    torch.save({'weight': torch.zeros(2), 'evil': Payload()}, os.path.join(OUT, 'malicious.pt'))
    torch.save({'weight': torch.zeros(2), 'step': 3}, os.path.join(OUT, 'not-a-state-dict.pt'))
    rezip(sd)


def rezip(sd):
    src = zipfile.ZipFile(os.path.join(OUT, 'tensors.pt'))
    entries = [(i.filename, src.read(i.filename)) for i in src.infolist()]
    def write(file, items, method):
        with zipfile.ZipFile(os.path.join(OUT, file), 'w') as z:
            for name, data in items:
                z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, compress_type=method)
    write('big-endian.pt', entries + [('tensors/byteorder', b'big')], zipfile.ZIP_STORED)
    write('deflated.pt', entries, zipfile.ZIP_DEFLATED)
    write_zip64(os.path.join(OUT, 'zip64.pt'), entries)
    for f in ('deflated.pt', 'zip64.pt'):
        back = torch.load(os.path.join(OUT, f))
        assert all(torch.equal(back[k], v) for k, v in sd.items()), f


def write_zip64(path, entries):
    """Stored entries whose central headers defer sizes and offsets to zip64 extra fields (APPNOTE 4.5.3)."""
    out, central = bytearray(), bytearray()
    for name, data in entries:
        n, crc, off = name.encode(), zlib.crc32(data), len(out)
        extra = struct.pack('<HHQQ', 1, 16, len(data), len(data))
        out += struct.pack('<IHHHHHIIIHH', 0x04034b50, 45, 0, 0, 0, 0, crc, 0xffffffff, 0xffffffff, len(n), len(extra)) + n + extra + data
        cextra = struct.pack('<HHQQQ', 1, 24, len(data), len(data), off)
        central += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 45, 45, 0, 0, 0, 0, crc, 0xffffffff, 0xffffffff,
                               len(n), len(cextra), 0, 0, 0, 0, 0xffffffff) + n + cextra
    cd_off, z64 = len(out), len(out) + len(central)
    out += central
    out += struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 45, 45, 0, 0, len(entries), len(entries), len(central), cd_off)
    out += struct.pack('<IIQI', 0x07064b50, 0, z64, 1)
    out += struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffffff, 0xffffffff, 0)
    with open(path, 'wb') as f:
        f.write(out)


def make_llama():
    src = os.path.join(ROOT, 'models')
    d = fresh(os.path.join(OUT, 'llama-f16'))
    shutil.copy(os.path.join(src, 'llama-f16', 'config.json'), d)
    torch.save(read_safetensors(os.path.join(src, 'llama-f16', 'model.safetensors')), os.path.join(d, 'pytorch_model.bin'))

    d = fresh(os.path.join(OUT, 'llama-tied-sharded'))
    shutil.copy(os.path.join(src, 'llama-tied-sharded', 'config.json'), d)
    index = json.load(open(os.path.join(src, 'llama-tied-sharded', 'model.safetensors.index.json')))
    weight_map = {}
    for shard in sorted(set(index['weight_map'].values())):
        name = shard.replace('model-', 'pytorch_model-').replace('.safetensors', '.bin')
        tensors = read_safetensors(os.path.join(src, 'llama-tied-sharded', shard))
        torch.save(tensors, os.path.join(d, name))
        weight_map.update({k: name for k in tensors})
    total = sum(4 * v.numel() for shard in set(weight_map.values()) for v in torch.load(os.path.join(d, shard)).values())
    with open(os.path.join(d, 'pytorch_model.bin.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': dict(sorted(weight_map.items()))}, f, indent=2)


def make_lora():
    cfg = json.load(open(os.path.join(ROOT, 'models', 'llama-gqa', 'config.json')))
    hd = cfg['hidden_size'] // cfg['num_attention_heads']
    outs = {'q_proj': cfg['hidden_size'], 'v_proj': cfg['num_key_value_heads'] * hd}
    g = torch.Generator().manual_seed(7)
    r = 2
    sd = collections.OrderedDict()
    for layer in range(cfg['num_hidden_layers']):
        for proj, out_f in outs.items():
            p = f'base_model.model.model.layers.{layer}.self_attn.{proj}'
            sd[f'{p}.lora_A.weight'] = torch.randn(r, cfg['hidden_size'], generator=g) * 0.3
            sd[f'{p}.lora_B.weight'] = torch.randn(out_f, r, generator=g) * 0.3
    adapter_config = {
        'base_model_name_or_path': 'llama-gqa', 'bias': 'none', 'fan_in_fan_out': False, 'inference_mode': True,
        'init_lora_weights': True, 'lora_alpha': 4, 'lora_dropout': 0.0, 'modules_to_save': None,
        'peft_type': 'LORA', 'r': r, 'target_modules': ['q_proj', 'v_proj'], 'task_type': 'CAUSAL_LM',
    }
    for name in ('lora-bin', 'lora-safetensors'):
        d = fresh(os.path.join(OUT, name))
        with open(os.path.join(d, 'adapter_config.json'), 'w') as f:
            json.dump(adapter_config, f, indent=2, sort_keys=True)
    torch.save(sd, os.path.join(OUT, 'lora-bin', 'adapter_model.bin'))
    write_safetensors(os.path.join(OUT, 'lora-safetensors', 'adapter_model.safetensors'), sd)


def make_dit():
    ema = read_safetensors(os.path.join(ROOT, 'dit', 'orig-f32.safetensors.gz'))
    model = collections.OrderedDict((k, torch.zeros_like(v)) for k, v in ema.items())
    params = [torch.nn.Parameter(v.clone()) for v in list(ema.values())[:2]]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0)
    sum(p.sum() for p in params).backward()
    opt.step()
    args = argparse.Namespace(model='DiT-S/2', image_size=8, num_classes=10, epochs=1, global_batch_size=2)
    path = os.path.join(OUT, 'dit-train.pt')
    torch.save({'model': model, 'ema': ema, 'opt': opt.state_dict(), 'args': args}, path)
    with open(path, 'rb') as f, gzip.GzipFile(path + '.gz', 'wb', mtime=0) as gz:
        gz.write(f.read())
    os.remove(path)


def main():
    os.makedirs(OUT, exist_ok=True)
    make_tensors()
    make_llama()
    make_lora()
    make_dit()


if __name__ == '__main__':
    main()
