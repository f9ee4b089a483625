#!/usr/bin/python3
"""Converts pytorch-fid's published FID Inception weights to the safetensors file onelora reads.

pytorch-fid (github.com/mseitzer/pytorch-fid) publishes the TF 2015-12-05 Inception graph's weights
ported to its FIDInceptionV3 as `pt_inception-2015-12-05-6726825d.pth` (a torch.save state dict,
names like `Mixed_5b.branch1x1.conv.weight`). onelora does not download it; fetch it yourself from
pytorch-fid's release page, then:

  /usr/bin/python3 scripts/convert-fid-inception.py pt_inception-2015-12-05-6726825d.pth models/fid-inception.safetensors
  npx onelora eval fid --images DIR --ref REF --inception models/fid-inception.safetensors

The BatchNorm step counters (`num_batches_tracked`) are dropped; everything else is written as F32
under its own name (onelora ignores the 1008-class `fc`). Needs only torch and numpy.
"""
import json
import struct
import sys

import numpy as np
import torch


def main(src, dst):
    sd = torch.load(src, map_location='cpu')
    if not isinstance(sd, dict):
        sys.exit(f'{src}: holds a {type(sd).__name__}, not a state dict')
    tensors = {k: v.detach().float().contiguous().numpy() for k, v in sd.items() if not k.endswith('num_batches_tracked')}
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name], dtype='<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(tensors[name].shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header['__metadata__'] = {'format': 'pt', 'source': src.split('/')[-1]}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(dst, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h)
        for b in blobs:
            f.write(b)
    print(f'wrote {len(tensors)} tensors to {dst}')


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit('usage: convert-fid-inception.py IN.pth OUT.safetensors')
    main(sys.argv[1], sys.argv[2])
