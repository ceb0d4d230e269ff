#!/usr/bin/env python3
"""PyTorch side of `cargo bench --bench train`: one mPLUG-Owl2 training step (forward with labels, backward,
torch.optim.AdamW step), f32, CPU, on the same configs and batch layout as the Rust bench.

The original mPLUG-Owl2 code is not available offline, so the model is re-written here from its structure
(spec: X-PLUG/mPLUG-Owl @ 0f3068f, `mplug_owl2/model/{visual_encoder,modeling_llama2,multiway,
modeling_mplug_owl2}.py` under transformers 4.31), with the checkpoint's parameter names:
- ViT: patch conv without bias, CLS, learned position embedding, pre-LN, pre-LN blocks with the fused
  per-head-interleaved `query_key_value`, quick-GELU MLP, post-LN over all tokens;
- abstractor: `norm1`/`normk`/`norm2` (eps 1e-5), sincos position tables on queries and keys, the residual on the
  normed queries, SwiGLU with `ffn_ln`, `visual_fc` and `vit_eos`;
- LLaMA (HF 4.31 eager) with the modality-adaptive module: `MultiwayNetwork` (gather the tokens of each modality,
  run that branch, scatter back into `empty_like`) for `input_layernorm`, `post_attention_layernorm`, `k_proj`,
  `v_proj`; RoPE rotate-half; additive causal + padding mask (`finfo.min`, then `max(·, finfo.min)`); softmax in
  f32; token-level mean cross-entropy of the shifted labels.

Correctness: on the tiny config the script loads `tests/fixtures/tiny-owl2/model.safetensors`, builds the
fixture's batch from `tests/fixtures/train-step/train_step.safetensors`, and asserts the original code's loss
(6.80948448) and global gradient norm (8.18341064) before timing; so the timed step does the same work.

Two variants of the step are timed:
- `step` (the comparison): exactly the work of biqa's `Owl2Train::forward_loss` + backward + AdamW: one image
  encoded (the image row's), only the supervised positions through `lm_head`;
- `step_original_path`: what the original training forward does on top: the text-only row's all-zero image is
  encoded too (then unused), the logits of every position go through `lm_head` before the shift, and the ViT
  layers run under gradient checkpointing (hard-coded in the original's train mode).

Run: python3 benches/reference/train_torch.py [threads] [tiny,small]   (torch, numpy, safetensors; default 2 threads,
both configs)
"""
import math
import pathlib
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint
from safetensors.numpy import load_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY_DIR = ROOT / "tests/fixtures/tiny-owl2"
FIXTURE = ROOT / "tests/fixtures/train-step/train_step.safetensors"
IMAGE_TOKEN_INDEX = -200
IGNORE_INDEX = -100
LR = 1e-4

CONFIGS = {
    # llm: vocab, hidden, mlp, layers, heads; vit: hidden, mlp, layers, heads, image size, patch;
    # abstractor: hidden, swiglu, layers, heads, queries
    "tiny": dict(llm=(512, 96, 160, 2, 4), vit=(64, 256, 2, 4, 56, 14), abst=(64, 176, 2, 4, 8)),
    "small": dict(llm=(32000, 512, 1376, 8, 8), vit=(256, 1024, 6, 4, 224, 14), abst=(256, 704, 2, 4, 16)),
}


# ----------------------------------------------------------------------------------------------- vision tower
class VisionEmbeddings(nn.Module):
    def __init__(self, d, size, patch):
        super().__init__()
        n = (size // patch) ** 2 + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.position_embedding = nn.Parameter(torch.zeros(1, n, d))
        self.patch_embed = nn.Conv2d(3, d, patch, patch, bias=False)
        self.pre_layernorm = nn.LayerNorm(d, eps=1e-6)

    def forward(self, px):
        x = self.patch_embed(px).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        x = x + self.position_embedding[:, : x.size(1)]
        return self.pre_layernorm(x)


class VisionAttention(nn.Module):
    def __init__(self, d, nh):
        super().__init__()
        self.nh = nh
        self.query_key_value = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)

    def forward(self, x):
        b, s, d = x.shape
        hd = d // self.nh
        # Rows of the fused weight are [head][q|k|v][hd].
        qkv = self.query_key_value(x).reshape(b, s, self.nh, 3, hd).permute(3, 0, 2, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        p = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * hd**-0.5, dim=-1)
        return self.dense(torch.matmul(p, v).permute(0, 2, 1, 3).reshape(b, s, d))


class VisionMlp(nn.Module):
    def __init__(self, d, m):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, m), nn.Linear(m, d)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))  # quick_gelu


class VisionLayer(nn.Module):
    def __init__(self, d, m, nh):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(d, eps=1e-6)
        self.self_attn = VisionAttention(d, nh)
        self.post_attention_layernorm = nn.LayerNorm(d, eps=1e-6)
        self.mlp = VisionMlp(d, m)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class VisionEncoder(nn.Module):
    def __init__(self, d, m, n, nh):
        super().__init__()
        self.layers = nn.ModuleList([VisionLayer(d, m, nh) for _ in range(n)])


class VisionModel(nn.Module):
    def __init__(self, d, m, n, nh, size, patch):
        super().__init__()
        self.embeddings = VisionEmbeddings(d, size, patch)
        self.encoder = VisionEncoder(d, m, n, nh)
        self.post_layernorm = nn.LayerNorm(d, eps=1e-6)

    def forward(self, px, checkpointing=False):
        x = self.embeddings(px)
        for layer in self.encoder.layers:
            if checkpointing:
                x = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return self.post_layernorm(x)


# ----------------------------------------------------------------------------------------------- abstractor
def sincos_1d(dim, pos):
    """MAE's `get_1d_sincos_pos_embed_from_grid`, in float32: [sin(p·ω) | cos(p·ω)], ω_i = 1/10000^(i/(dim/2))."""
    omega = np.arange(dim // 2, dtype=np.float32) / np.float32(dim / 2.0)
    omega = np.float32(1.0) / np.float32(10000) ** omega
    out = np.einsum("m,d->md", np.asarray(pos, dtype=np.float32).reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim, grid):
    """MAE's `get_2d_sincos_pos_embed(cls_token=True)`: a zero CLS row, then per patch [col table | row table]."""
    gh, gw = np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32)
    g = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, grid, grid)  # w first, as the MAE code
    emb = np.concatenate([sincos_1d(dim // 2, g[0]), sincos_1d(dim // 2, g[1])], axis=1)
    return np.concatenate([np.zeros([1, dim], dtype=np.float32), emb], axis=0)


class AbstractorAttention(nn.Module):
    def __init__(self, d, nh, q, grid):
        super().__init__()
        self.nh = nh
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.register_buffer("q_pos_embed", torch.from_numpy(sincos_1d(d, np.arange(q)).astype(np.float32)),
                             persistent=False)
        self.register_buffer("k_pos_embed", torch.from_numpy(sincos_2d(d, grid).astype(np.float32)),
                             persistent=False)

    def forward(self, xq, kv):
        b, q, d = xq.shape
        hd = d // self.nh
        heads = lambda t: t.view(b, t.shape[1], self.nh, hd).permute(0, 2, 1, 3)
        pos = torch.cat([self.q_pos_embed, self.k_pos_embed], 0).unsqueeze(0)
        key = heads(self.key(kv + pos))
        value = heads(self.value(kv))
        query = heads(self.query(xq + self.q_pos_embed.unsqueeze(0)))
        p = torch.softmax(torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(hd), dim=-1)
        return torch.matmul(p, value).permute(0, 2, 1, 3).reshape(b, q, d)


class AbstractorMlp(nn.Module):
    def __init__(self, d, m):
        super().__init__()
        self.w1, self.w2, self.w3 = nn.Linear(d, m), nn.Linear(m, d), nn.Linear(d, m)
        self.ffn_ln = nn.LayerNorm(m, eps=1e-6)

    def forward(self, x):
        return self.w2(self.ffn_ln(F.silu(self.w1(x)) * self.w3(x)))


class AbstractorOutput(nn.Module):
    def __init__(self, d, m):
        super().__init__()
        self.out_proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)  # eps 1e-5
        self.mlp = AbstractorMlp(d, m)

    def forward(self, ctx, xq):
        x = xq + self.out_proj(ctx)
        return x + self.mlp(self.norm2(x))


class CrossAttention(nn.Module):
    def __init__(self, d, m, nh, q, grid):
        super().__init__()
        self.norm1, self.normk = nn.LayerNorm(d), nn.LayerNorm(d)  # eps 1e-5
        self.attention = AbstractorAttention(d, nh, q, grid)
        self.output = AbstractorOutput(d, m)

    def forward(self, x, img):
        xq = self.norm1(x)
        kv = torch.cat([xq, self.normk(img)], 1)
        return self.output(self.attention(xq, kv), xq)


class AbstractorLayer(nn.Module):
    def __init__(self, *a):
        super().__init__()
        self.crossattention = CrossAttention(*a)


class AbstractorEncoder(nn.Module):
    def __init__(self, d, m, n, nh, q, grid):
        super().__init__()
        self.layers = nn.ModuleList([AbstractorLayer(d, m, nh, q, grid) for _ in range(n)])


class VisualAbstractor(nn.Module):
    def __init__(self, d, m, n, nh, q, grid, out):
        super().__init__()
        self.query_embeds = nn.Parameter(torch.zeros(1, q, d))
        self.encoder = AbstractorEncoder(d, m, n, nh, q, grid)
        self.visual_fc = nn.Linear(d, out)
        self.vit_eos = nn.Parameter(torch.zeros(1, 1, out))

    def forward(self, img):
        b = img.shape[0]
        x = self.query_embeds.repeat(b, 1, 1)
        for layer in self.encoder.layers:
            x = layer.crossattention(x, img)
        return torch.cat([self.visual_fc(x), self.vit_eos.repeat(b, 1, 1)], 1)


# ----------------------------------------------------------------------------------------------- LLaMA + MAM
class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        var = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(var + self.eps)
        return self.weight * x.to(dtype)


class Multiway(nn.Module):
    """`MultiwayNetwork` of the original: each token through the branch of its modality."""

    def __init__(self, make):
        super().__init__()
        self.multiway = nn.ModuleList([make(), make()])

    def forward(self, x, modality):
        out = torch.empty_like(x)
        for idx, branch in enumerate(self.multiway):
            where = modality.eq(idx).nonzero(as_tuple=True)
            h = x[where].unsqueeze(1).contiguous()
            if h.numel():
                out[where] = branch(h).squeeze(1)
        return out.contiguous()


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, h, nh):
        super().__init__()
        self.nh, self.hd = nh, h // nh
        self.q_proj = nn.Linear(h, h, bias=False)
        self.k_proj = Multiway(lambda: nn.Linear(h, h, bias=False))
        self.v_proj = Multiway(lambda: nn.Linear(h, h, bias=False))
        self.o_proj = nn.Linear(h, h, bias=False)

    def forward(self, x, modality, cos, sin, mask):
        b, l, h = x.shape
        q = self.q_proj(x).view(b, l, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x, modality).view(b, l, self.nh, self.hd).transpose(1, 2)
        v = self.v_proj(x, modality).view(b, l, self.nh, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd)
        w = w + mask
        w = torch.max(w, torch.tensor(torch.finfo(w.dtype).min))
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        return self.o_proj(torch.matmul(w, v).transpose(1, 2).reshape(b, l, h))


class LlamaMlp(nn.Module):
    def __init__(self, h, m):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(h, m, bias=False), nn.Linear(h, m, bias=False)
        self.down_proj = nn.Linear(m, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, h, m, nh):
        super().__init__()
        self.input_layernorm = Multiway(lambda: RMSNorm(h))
        self.self_attn = LlamaAttention(h, nh)
        self.post_attention_layernorm = Multiway(lambda: RMSNorm(h))
        self.mlp = LlamaMlp(h, m)

    def forward(self, x, modality, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x, modality), modality, cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x, modality))


class Owl2Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        vocab, h, m, n, nh = cfg["llm"]
        vd, vm, vn, vnh, size, patch = cfg["vit"]
        ad, am, an, anh, q = cfg["abst"]
        self.embed_tokens = nn.Embedding(vocab, h)
        self.layers = nn.ModuleList([DecoderLayer(h, m, nh) for _ in range(n)])
        self.norm = RMSNorm(h)
        self.vision_model = VisionModel(vd, vm, vn, vnh, size, patch)
        self.visual_abstractor = VisualAbstractor(ad, am, an, anh, q, size // patch, h)
        hd = h // nh
        inv_freq = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        freqs = torch.einsum("i,j->ij", torch.arange(2048, dtype=torch.float32), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)


class Owl2(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.model = Owl2Model(cfg)
        self.lm_head = nn.Linear(cfg["llm"][1], cfg["llm"][0], bias=False)

    def forward_loss(self, batch, pixels, original=False):
        """The training forward with labels. `original`: encode every row's image (zeros for text-only rows),
        run the ViT under gradient checkpointing, and put every position through `lm_head` (the original
        code path); otherwise only the image rows' images and the supervised positions (biqa's work)."""
        m = self.model
        images = m.visual_abstractor(m.vision_model(pixels, checkpointing=original))
        # prepare_inputs_labels_for_multimodal: text pieces embedded, image slots spliced, zero re-padding.
        rows = []
        for segs in batch["rows"]:
            pieces = []
            for kind, val in segs:
                if kind == "text":
                    pieces.append(m.embed_tokens(val))
                elif kind == "image":
                    pieces.append(images[val])
                else:
                    pieces.append(torch.zeros(val, images.shape[-1]))
            rows.append(torch.cat(pieces, 0))
        x = torch.stack(rows, 0)
        b, l, _ = x.shape
        modality = batch["modality"]
        # HF 4.31 _prepare_decoder_attention_mask: causal + expanded padding mask, additive finfo.min.
        fmin = torch.finfo(x.dtype).min
        causal = torch.full((l, l), fmin).triu(1)
        pad = torch.zeros(b, 1, 1, l).masked_fill(~batch["attention_mask"][:, None, None, :], fmin)
        mask = causal[None, None] + pad
        pos = batch["position_ids"]
        cos, sin = m.cos_cached[pos].unsqueeze(1), m.sin_cached[pos].unsqueeze(1)
        for layer in m.layers:
            x = layer(x, modality, cos, sin, mask)
        x = m.norm(x)
        labels = batch["labels"]
        if original:
            logits = self.lm_head(x).float()
            v = logits.shape[-1]
            return F.cross_entropy(logits[..., :-1, :].contiguous().view(-1, v),
                                   labels[..., 1:].contiguous().view(-1), ignore_index=IGNORE_INDEX)
        return F.cross_entropy(self.lm_head(x.reshape(b * l, -1)[batch["sup_flat"]]), batch["sup_targets"])


# ----------------------------------------------------------------------------------------------- batch
def expand(fixture, image_tokens):
    """`prepare_inputs_labels_for_multimodal` on the fixture's collated batch (`batch.*`, [2, 168]): each −200
    becomes `image_tokens` image positions (label −100, modality 1), rows are re-padded with zero vectors."""
    ids, labels, amask = fixture["batch.input_ids"], fixture["batch.labels"], fixture["batch.attention_mask"]
    rows, new_labels, modality, masks, n_images = [], [], [], [], 0
    for r in range(ids.shape[0]):
        where = np.nonzero(ids[r] == IMAGE_TOKEN_INDEX)[0]
        if len(where):
            p = int(where[0])
            segs = [("text", ids[r, :p]), ("image", n_images), ("text", ids[r, p + 1:])]
            lab = np.concatenate([labels[r, :p], np.full(image_tokens, IGNORE_INDEX), labels[r, p + 1:]])
            mod = np.concatenate([np.zeros(p), np.ones(image_tokens), np.zeros(ids.shape[1] - p - 1)])
            n_images += 1
        else:
            segs, lab, mod = [("text", ids[r])], labels[r], np.zeros(ids.shape[1])
        rows.append([s for s in segs if s[0] != "text" or len(s[1])])
        new_labels.append(lab)
        modality.append(mod)
        masks.append(amask[r])
    length = max(len(lab) for lab in new_labels)
    for r in range(len(rows)):
        extra, n = len(new_labels[r]) - ids.shape[1], len(new_labels[r])
        masks[r] = np.concatenate([np.ones(extra), masks[r], np.zeros(length - n)]).astype(bool)
        if length > n:
            rows[r].append(("zeros", length - n))
        new_labels[r] = np.concatenate([new_labels[r], np.full(length - n, IGNORE_INDEX)])
        modality[r] = np.concatenate([modality[r], np.zeros(length - n)])
    labels = np.stack(new_labels).astype(np.int64)
    sup = [(r, t) for r in range(len(rows)) for t in range(length - 1) if labels[r, t + 1] != IGNORE_INDEX]
    return {
        "rows": [[(k, torch.from_numpy(v.astype(np.int64)) if k == "text" else v) for k, v in segs]
                 for segs in rows],
        "labels": torch.from_numpy(labels),
        "modality": torch.from_numpy(np.stack(modality).astype(np.int64)),
        "attention_mask": torch.from_numpy(np.stack(masks)),
        "position_ids": torch.arange(length).expand(len(rows), length),
        "sup_flat": torch.tensor([r * length + t for r, t in sup]),
        "sup_targets": torch.tensor([labels[r, t + 1] for r, t in sup]),
        "n_images": n_images,
    }


def random_init(model, seed):
    """Like biqa's `Weights::random`: biases 0, norm gains 1, 2-D weights N(0, 1/in), the rest N(0, 0.02²)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif p.dim() == 1:
                p.fill_(1.0)
            elif p.dim() == 2:
                p.normal_(0.0, p.shape[1] ** -0.5, generator=g)
            else:
                p.normal_(0.0, 0.02, generator=g)


def timed(f, warmup, runs):
    for _ in range(warmup):
        f()
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    return statistics.median(t) * 1e3


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, numpy {np.__version__}, threads {threads}")
    fixture = load_file(str(FIXTURE))
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else list(CONFIGS)
    for name, cfg in CONFIGS.items():
        if name not in only:
            continue
        torch.manual_seed(0)
        model = Owl2(cfg)
        q = cfg["abst"][4]
        batch = expand(fixture, q + 1)
        size = cfg["vit"][4]
        if name == "tiny":
            weights = {k: torch.from_numpy(v) for k, v in load_file(str(TINY_DIR / "model.safetensors")).items()
                       if not k.endswith(("inv_freq", "q_pos_embed", "k_pos_embed"))}
            missing, unexpected = model.load_state_dict(weights, strict=False)
            assert not missing and not unexpected, (missing, unexpected)
            for k in ["labels", "modality_indicators", "attention_mask"]:
                ours = batch["modality" if k == "modality_indicators" else k].numpy().astype(np.int64)
                assert (ours == fixture[f"expanded.{k}"]).all(), k
            image = torch.from_numpy(fixture["batch.images_row0"])[None]
        else:
            random_init(model, 0)
            image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
        model.train()
        # The original stacks an all-zero image for the text-only row and encodes both.
        image_orig = torch.cat([image, torch.zeros_like(image)], 0)
        n_params = sum(1 for _ in model.parameters())
        # The same parameter tensors and sizes as biqa's model (benches/train.rs asserts the same numbers).
        assert (n_params, sum(p.numel() for p in model.parameters())) == \
            {"tiny": (108, 550944), "small": (234, 68985344)}[name]

        if name == "tiny":
            for original, px in [(False, image), (True, image_orig)]:
                model.zero_grad(set_to_none=True)
                loss = model.forward_loss(batch, px, original)
                loss.backward()
                norm = torch.norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()
                assert abs(loss.item() - 6.80948448) < 1e-4, loss.item()
                assert abs(norm - 8.18341064) < 1e-4 * 8.18, norm
                assert all(p.grad is not None for p in model.parameters())
                print(f"train_{name}: loss {loss.item():.8f} (fixture 6.80948448), grad norm {norm:.8f} "
                      f"(fixture 8.18341064), {n_params} parameters{', original path' if original else ''}")
        print(f"train_{name}: batch {tuple(batch['labels'].shape)}, {q + 1} image tokens, "
              f"{len(batch['sup_targets'])} supervised")

        opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.0)

        def forward():
            return model.forward_loss(batch, image)

        def forward_backward():
            model.zero_grad(set_to_none=True)
            forward().backward()

        def step(original=False):
            opt.zero_grad(set_to_none=True)
            model.forward_loss(batch, image_orig if original else image, original).backward()
            opt.step()

        warmup, runs = (5, 30) if name == "tiny" else (2, 10)
        print(f"train_{name}/forward             median {timed(forward, warmup, runs):9.3f} ms")
        print(f"train_{name}/forward_backward    median {timed(forward_backward, warmup, runs):9.3f} ms")
        print(f"train_{name}/step                median {timed(step, warmup, runs):9.3f} ms")
        print(f"train_{name}/step_original_path  median {timed(lambda: step(True), warmup, runs):9.3f} ms")

        if name == "small":
            # mPLUG-Owl2's fine-tuning default (`--freeze_vision_model True`): the tower takes no gradient, so autograd
            # records nothing through it and AdamW skips its parameters.
            model.model.vision_model.requires_grad_(False)
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR, betas=(0.9, 0.98),
                                    eps=1e-6, weight_decay=0.0)
            print(f"train_{name}_frozen_vision/step  median {timed(step, warmup, runs):9.3f} ms")


if __name__ == "__main__":
    main()
