#!/usr/bin/env python3
"""Python side of `cargo bench --bench vision`.

1. Preprocessing as Q-Align does it: Pillow decode of the 1024x768 JPEG, expand2square with (122,116,104), then
   transformers' CLIPImageProcessor (448, bicubic) to a [1,3,448,448] tensor.
2. Vision tower + visual abstractor forward, f32, eager, written in PyTorch from the mPLUG-Owl2 code's structure
   (`visual_encoder.py`: fused per-head QKV ViT, abstractor with normed-query residual and SwiGLU + ffn_ln) on the
   tiny fixture config and the "small" config. Random weights: the timing does not depend on them.

Run: python3 benches/reference/vision_torch.py [threads]   (torch, transformers, pillow; default 2 threads)
"""
import pathlib
import statistics
import sys
import time

import PIL
import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers
from PIL import Image
from transformers import CLIPImageProcessor

PHOTO = pathlib.Path(__file__).resolve().parent.parent / "data/rocket_1024x768.jpg"


def timed(f, warmup=3, runs=20):
    for _ in range(warmup):
        f()
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    return statistics.median(t) * 1e3


def expand2square(img, bg):
    w, h = img.size
    if w == h:
        return img
    if w > h:
        out = Image.new(img.mode, (w, w), bg)
        out.paste(img, (0, (w - h) // 2))
    else:
        out = Image.new(img.mode, (h, h), bg)
        out.paste(img, ((h - w) // 2, 0))
    return out


class Attn(nn.Module):
    def __init__(self, d, nh):
        super().__init__()
        self.nh = nh
        self.query_key_value = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)

    def forward(self, x):
        b, s, d = x.shape
        qkv = self.query_key_value(x).reshape(b, s, self.nh, 3, d // self.nh).permute(3, 0, 2, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        p = torch.softmax(q @ k.transpose(-1, -2) * (d // self.nh) ** -0.5, dim=-1)
        return self.dense((p @ v).transpose(1, 2).reshape(b, s, d))


class VitLayer(nn.Module):
    def __init__(self, d, m, nh):
        super().__init__()
        self.ln1, self.attn, self.ln2 = nn.LayerNorm(d, eps=1e-6), Attn(d, nh), nn.LayerNorm(d, eps=1e-6)
        self.fc1, self.fc2 = nn.Linear(d, m), nn.Linear(m, d)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        h = self.fc1(self.ln2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))


class Vit(nn.Module):
    def __init__(self, d, m, layers, nh, size, patch):
        super().__init__()
        self.patch = nn.Conv2d(3, d, patch, patch, bias=False)
        n = (size // patch) ** 2 + 1
        self.cls = nn.Parameter(torch.randn(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, n, d))
        self.pre = nn.LayerNorm(d, eps=1e-6)
        self.layers = nn.ModuleList([VitLayer(d, m, nh) for _ in range(layers)])
        self.post = nn.LayerNorm(d, eps=1e-6)

    def forward(self, px):
        x = self.patch(px).flatten(2).transpose(1, 2)
        x = self.pre(torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos)
        for l in self.layers:
            x = l(x)
        return self.post(x)


class AbsLayer(nn.Module):
    def __init__(self, d, m, nh, q, s):
        super().__init__()
        self.nh = nh
        self.norm1, self.normk, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.query, self.key, self.value, self.out = (nn.Linear(d, d) for _ in range(4))
        self.w1, self.w3, self.w2 = nn.Linear(d, m), nn.Linear(d, m), nn.Linear(m, d)
        self.ffn_ln = nn.LayerNorm(m, eps=1e-6)
        self.register_buffer("q_pos", torch.randn(q, d))
        self.register_buffer("k_pos", torch.randn(s, d))

    def forward(self, x, img):
        b, q, d = x.shape
        xq = self.norm1(x)
        kv = torch.cat([xq, self.normk(img)], 1)
        pos = torch.cat([self.q_pos, self.k_pos], 0)
        heads = lambda t: t.reshape(b, t.shape[1], self.nh, d // self.nh).transpose(1, 2)
        qq, kk, vv = heads(self.query(xq + self.q_pos)), heads(self.key(kv + pos)), heads(self.value(kv))
        p = torch.softmax(qq @ kk.transpose(-1, -2) * (d // self.nh) ** -0.5, -1)
        x = xq + self.out((p @ vv).transpose(1, 2).reshape(b, q, d))
        h = self.norm2(x)
        return x + self.w2(self.ffn_ln(F.silu(self.w1(h)) * self.w3(h)))


class Abstractor(nn.Module):
    def __init__(self, d, m, layers, nh, q, s, out):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, q, d))
        self.layers = nn.ModuleList([AbsLayer(d, m, nh, q, s) for _ in range(layers)])
        self.fc = nn.Linear(d, out)
        self.eos = nn.Parameter(torch.randn(1, 1, out))

    def forward(self, img):
        x = self.queries.expand(img.shape[0], -1, -1)
        for l in self.layers:
            x = l(x, img)
        return torch.cat([self.fc(x), self.eos.expand(img.shape[0], -1, -1)], 1)


CONFIGS = {
    # vit: d, mlp, layers, heads, size, patch; abstractor: d, swiglu, layers, heads, queries, out
    "tiny": ((64, 256, 2, 4, 56, 14), (64, 176, 2, 4, 8, 96)),
    "small": ((256, 1024, 6, 4, 224, 14), (256, 704, 2, 4, 16, 512)),
}


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, Pillow {PIL.__version__}, threads {threads}")
    proc = CLIPImageProcessor(size=448, crop_size=448, resample=3)

    def preprocess():
        img = Image.open(PHOTO).convert("RGB")
        img = expand2square(img, (122, 116, 104))
        return proc.preprocess([img], return_tensors="pt")["pixel_values"]

    print(f"vision_preprocess/jpeg_1024x768_to_448_pad   median {timed(preprocess, runs=30):8.3f} ms")
    for name, (v, a) in CONFIGS.items():
        vit = Vit(*v).eval()
        grid = v[4] // v[5]
        abst = Abstractor(a[0], a[1], a[2], a[3], a[4], grid * grid + 1, a[5]).eval()
        px = torch.randn(1, 3, v[4], v[4])
        with torch.no_grad():
            ms = timed(lambda: abst(vit(px)))
        print(f"vision_forward/{name}_vit_plus_abstractor     median {ms:8.3f} ms")


if __name__ == "__main__":
    main()
