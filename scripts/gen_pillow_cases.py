#!/usr/bin/env python3
"""Writes tests/fixtures/pillow-cases/: Pillow ground truth for biqa-vision's image preprocessing.

Small deterministic synthetic images (gradients plus seeded noise) in several pixel formats and file formats,
then, with Pillow:
  * `decoded.<file>`: `Image.open(file).convert("RGB")` as uint8 HWC (what every pipeline starts from);
  * `case.<name>`: the uint8 HWC image after the geometric part of a pipeline (pad / resize / shortest edge +
    center crop, with a given resampling filter), i.e. exactly what is then scaled by 1/255 and normalised;
  * `pixel_values.<name>` (a few cases): the float32 CHW output of transformers' CLIPImageProcessor on that image.

The pipelines (`pipeline()` below) are written out with Pillow and numpy:
  pad:     expand2square(img, tuple(int(m*255) for m in image_mean)) at the ORIGINAL resolution (Q-Align's
           `result.paste(img, (0, (W-H)//2))` / `((H-W)//2, 0)`), then the CLIPImageProcessor steps;
  resize:  img.resize((w, h)) to the configured size (a square for an int / shortest_edge size), then the
           CLIPImageProcessor steps (its resize is then a copy);
  shortest_edge_center_crop: the CLIPImageProcessor steps on the image itself.
CLIPImageProcessor steps: resize the shortest edge to `size` with the long edge `int(size * long / short)`
(transformers' get_resize_output_image_size), or to (height, width) for a dict size; then transformers'
center_crop offsets `top = (H - ch) // 2`, `left = (W - cw) // 2`.
When transformers is importable, the script also runs the real CLIPImageProcessor (transformers 4.31 needs a
`shortest_edge` size) on every unambiguous case and asserts that its output equals this pipeline followed by
`float32(u8 * (1/255))` and `(x - mean) / std` in float32; those outputs are stored as `pixel_values.*`
for a few cases. (transformers guesses the channel axis from the array shape, so images with a side of 1 or 3
pixels are skipped in that check: transformers misreads them, we follow the intended semantics.)

Pass order: Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height shrinks by more
than twice as many pixels as the width; Pillow <= 12 always ran the horizontal pass first. The script asserts the
rule on every two-pass resize it makes (one-step result == the two single-pass steps in the predicted order), and
a few cases (`pass_order: horizontal_first`) store the old order's result.

Output: tests/fixtures/pillow-cases/{images/*, expected.safetensors, manifest.json}.

Run: python3 scripts/gen_pillow_cases.py   (needs numpy and Pillow; transformers optional, for the cross-check)
Made with Pillow 13.0.0, numpy 2.4.6, transformers 4.31.0 (see manifest.json: generator).
"""
import json
import pathlib
import struct
import zlib

import numpy as np
import PIL
from PIL import Image, features

try:
    import transformers
    from transformers import CLIPImageProcessor
except Exception:  # noqa: BLE001 - optional cross-check
    transformers = None

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "pillow-cases"
IMAGES = OUT / "images"

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


# ----------------------------------------------------------------------------------------------- images


def rgb_pattern(w, h, seed, noise=18.0):
    """Smooth colour gradients, a few hard edges and seeded noise: exercises every filter tap."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx = x / max(w - 1, 1)
    fy = y / max(h - 1, 1)
    r = 255 * fx
    g = 255 * fy
    b = 128 + 110 * np.sin(6.0 * fx + 4.0 * fy)
    # hard-edged blocks (checkerboard of ~8 px cells) to get overshoot / clamping in bicubic
    cells = ((x // 8 + y // 8) % 2) * 70.0 - 35.0
    img = np.stack([r + cells, g - cells, b + 0.5 * cells], axis=-1)
    img += rng.normal(0.0, noise, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write_png(path, w, h, bitdepth, colortype, rows, plte=None, trns=None):
    """Minimal PNG writer (Pillow cannot write 16-bit RGB / LA PNGs)."""

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bitdepth, colortype, 0, 0, 0))
    if plte is not None:
        out += chunk(b"PLTE", plte)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    out += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(out)


def pack_bits(values, bits):
    """Packs one row of small integers MSB first, as PNG does for bit depths < 8."""
    out = bytearray()
    acc, n = 0, 0
    for v in values:
        acc = (acc << bits) | int(v)
        n += bits
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def make_images():
    IMAGES.mkdir(parents=True, exist_ok=True)
    files = {}

    def save(name, im, **kw):
        im.save(IMAGES / name, **kw)
        files[name] = im.mode

    # 8-bit RGB PNGs of several shapes
    for (w, h), seed in [((64, 48), 1), ((37, 23), 2), ((1, 300), 3), ((300, 1), 4), ((20, 15), 5),
                         ((160, 120), 6), ((23, 37), 7)]:
        noise = 4.0 if w * h > 10000 else 18.0  # keep the big one compressible
        save(f"rgb_{w}x{h}.png", Image.fromarray(rgb_pattern(w, h, seed, noise), "RGB"), optimize=True)

    base = rgb_pattern(40, 30, 10)
    save("grey_40x30.png", Image.fromarray(base[..., 1], "L"), optimize=True)
    la = np.stack([rgb_pattern(33, 21, 11)[..., 0], rgb_pattern(33, 21, 12)[..., 2]], axis=-1)
    save("greyalpha_33x21.png", Image.fromarray(la, "LA"), optimize=True)
    rgba = np.concatenate([rgb_pattern(45, 31, 13), rgb_pattern(45, 31, 14)[..., :1]], axis=-1)
    save("rgba_45x31.png", Image.fromarray(rgba, "RGBA"), optimize=True)
    # palette image (adaptive 32-colour palette) with one transparent index
    pal = Image.fromarray(rgb_pattern(50, 30, 15), "RGB").quantize(colors=32, method=Image.Quantize.MEDIANCUT)
    pal.info["transparency"] = 3
    save("palette_50x30.png", pal, transparency=3)
    # 16-bit greyscale (Pillow mode I;16): values up to 1023, so Pillow's clamp to 255 shows
    g16 = (rgb_pattern(30, 20, 16)[..., 0].astype(np.uint16) * 4 + np.arange(30, dtype=np.uint16)[None, :] % 4)
    write_png(IMAGES / "grey16_30x20.png", 30, 20, 16, 0, [r.astype(">u2").tobytes() for r in g16])
    files["grey16_30x20.png"] = "I;16"
    # 16-bit greyscale with a tRNS colour key (Pillow keeps I;16; the image crate reports grey+alpha)
    g16t = g16[:8, :12]
    write_png(IMAGES / "grey16trns_12x8.png", 12, 8, 16, 0, [r.astype(">u2").tobytes() for r in g16t],
              trns=struct.pack(">H", int(g16t[0, 0])))
    files["grey16trns_12x8.png"] = "I;16"
    # 16-bit RGB and 16-bit grey+alpha: full 16-bit range, low bytes random
    rng = np.random.default_rng(17)
    rgb16 = rgb_pattern(30, 20, 18).astype(np.uint16) * 257 + rng.integers(0, 256, (20, 30, 3)).astype(np.uint16)
    rgb16 = np.minimum(rgb16, 65535).astype(np.uint16)
    write_png(IMAGES / "rgb16_30x20.png", 30, 20, 16, 2, [r.astype(">u2").tobytes() for r in rgb16])
    files["rgb16_30x20.png"] = "RGB"
    la16 = rgb16[:16, :24, :2]
    write_png(IMAGES / "greyalpha16_24x16.png", 24, 16, 16, 4, [r.astype(">u2").tobytes() for r in la16])
    files["greyalpha16_24x16.png"] = "RGBA"
    # low bit depths: 1-bit and 4-bit grey, 4-bit palette
    g4 = (rgb_pattern(16, 8, 19)[..., 1] // 16).astype(np.uint8)
    write_png(IMAGES / "grey4_16x8.png", 16, 8, 4, 0, [pack_bits(r, 4) for r in g4])
    files["grey4_16x8.png"] = "L"
    g1 = (rgb_pattern(16, 8, 20)[..., 0] > 127).astype(np.uint8)
    write_png(IMAGES / "grey1_16x8.png", 16, 8, 1, 0, [pack_bits(r, 1) for r in g1])
    files["grey1_16x8.png"] = "1"
    p4 = (rgb_pattern(16, 8, 21)[..., 2] // 16).astype(np.uint8)
    plte = bytes(int(v) for i in range(16) for v in (i * 16, 255 - i * 15, (i * 37) % 256))
    write_png(IMAGES / "palette4_16x8.png", 16, 8, 4, 3, [pack_bits(r, 4) for r in p4], plte=plte)
    files["palette4_16x8.png"] = "P"

    # other containers of the same 64x48 RGB pixels (lossless: decode must be exact)
    src = Image.open(IMAGES / "rgb_64x48.png").convert("RGB")
    save("rgb_64x48.bmp", src)
    save("rgb_64x48.tiff", src, compression="tiff_deflate")
    save("rgb_64x48.webp", src, lossless=True, quality=100, method=6)
    # JPEGs (lossy: the image crate's decoder may differ from libjpeg-turbo by a few levels)
    save("photo_64x48.jpg", src, quality=90, subsampling=2)  # 4:2:0
    save("photo444_37x23.jpg", Image.open(IMAGES / "rgb_37x23.png").convert("RGB"), quality=95, subsampling=0)
    save("grey_40x30.jpg", Image.open(IMAGES / "grey_40x30.png"), quality=90)
    return files


# -------------------------------------------------------------------------------------------- pipelines


def expand2square(img, bg):
    width, height = img.size
    if width == height:
        return img
    if width > height:
        result = Image.new(img.mode, (width, width), bg)
        result.paste(img, (0, (width - height) // 2))
        return result
    result = Image.new(img.mode, (height, height), bg)
    result.paste(img, ((height - width) // 2, 0))
    return result


def pillow13_horizontal_first(W, H, w, h):
    """Pillow 13's pass order (python-pillow/Pillow#9549): vertical first when the height shrinks by more than
    twice as many pixels as the width."""
    return not ((H - h) > 0 and (H - h) > (W - w) * 2)


def pil_resize(img, w, h, resample, order="pillow13"):
    """img.resize((w, h)), checking the pass-order rule; order="horizontal_first" gives Pillow <= 12's result
    (a horizontal-only resize followed by a vertical-only one is exactly the old two-pass order)."""
    W, H = img.size
    one = img.resize((w, h), resample=resample, reducing_gap=None)
    if W != w and H != h:
        hv = img.resize((w, H), resample=resample, reducing_gap=None).resize((w, h), resample=resample,
                                                                          reducing_gap=None)
        vh = img.resize((W, h), resample=resample, reducing_gap=None).resize((w, h), resample=resample,
                                                                          reducing_gap=None)
        if int(PIL.__version__.split(".")[0]) >= 13:
            predicted = hv if pillow13_horizontal_first(W, H, w, h) else vh
            assert np.array_equal(np.asarray(one), np.asarray(predicted)), ("pass order rule", W, H, w, h)
        if order == "horizontal_first":
            return hv
    return one


def size_hw(size, w, h):
    """Target (height, width) of CLIPImageProcessor.resize for a preprocessor_config `size` value."""
    if isinstance(size, dict) and "height" in size:
        return size["height"], size["width"]
    s = size["shortest_edge"] if isinstance(size, dict) else size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = s, int(s * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)


def crop_hw(crop):
    if isinstance(crop, dict):
        return crop["height"], crop["width"]
    return crop, crop


def center_crop(arr, ch, cw):
    """transformers.image_transforms.center_crop on an HWC uint8 array (including its zero padding)."""
    oh, ow = arr.shape[:2]
    top = (oh - ch) // 2
    bottom = top + ch
    left = (ow - cw) // 2
    right = left + cw
    if top >= 0 and bottom <= oh and left >= 0 and right <= ow:
        return arr[top:bottom, left:right]
    nh, nw = max(ch, oh), max(cw, ow)
    new = np.zeros((nh, nw, arr.shape[2]), dtype=arr.dtype)
    tp = (nh - oh) // 2
    lp = (nw - ow) // 2
    new[tp:tp + oh, lp:lp + ow] = arr
    top += tp
    bottom += tp
    left += lp
    right += lp
    return new[max(0, top):min(nh, bottom), max(0, left):min(nw, right)]


def pipeline(rgb, mode, cfg, order="pillow13"):
    """uint8 HWC after the geometric steps of `mode` for a config dict (see module docstring)."""
    resample = cfg.get("resample", 3)
    size = cfg.get("size", 224)
    if mode == "pad":
        bg = tuple(int(x * 255) for x in cfg.get("image_mean", CLIP_MEAN))
        rgb = expand2square(rgb, bg)
    elif mode == "resize":
        if isinstance(size, dict) and "height" in size:
            th, tw = size["height"], size["width"]
        else:
            s = size["shortest_edge"] if isinstance(size, dict) else size
            th, tw = s, s
        if (tw, th) != rgb.size:
            rgb = pil_resize(rgb, tw, th, resample, order)
    elif mode != "shortest_edge_center_crop":
        raise ValueError(mode)
    if cfg.get("do_resize", True):
        h, w = size_hw(size, *rgb.size)
        if (w, h) != rgb.size:
            rgb = pil_resize(rgb, w, h, resample, order)
    arr = np.asarray(rgb, dtype=np.uint8)
    if cfg.get("do_center_crop", True):
        arr = center_crop(arr, *crop_hw(cfg.get("crop_size", 224)))
    return np.ascontiguousarray(arr)


def pixel_values(u8, cfg):
    x = (u8 * (1 / 255)).astype(np.float32)  # float64 product, then cast (transformers' rescale)
    mean = np.array(cfg.get("image_mean", CLIP_MEAN), dtype=np.float32)
    std = np.array(cfg.get("image_std", CLIP_STD), dtype=np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def transformers_pixel_values(rgb, mode, cfg):
    """The real CLIPImageProcessor (None when it cannot run this case faithfully)."""
    if transformers is None:
        return None
    size = cfg.get("size", 224)
    if isinstance(size, dict) and "height" in size:
        return None  # transformers 4.31 CLIPImageProcessor only takes shortest_edge sizes
    if mode == "pad":
        rgb = expand2square(rgb, tuple(int(x * 255) for x in cfg.get("image_mean", CLIP_MEAN)))
    elif mode == "resize":
        s = size["shortest_edge"] if isinstance(size, dict) else size
        rgb = rgb.resize((s, s), resample=cfg.get("resample", 3), reducing_gap=None)
    if any(d in (1, 3) for d in rgb.size):
        return None  # channel-axis guessing would misread the array
    full = {"size": 224, "crop_size": 224, "resample": 3, "image_mean": CLIP_MEAN, "image_std": CLIP_STD}
    full.update(cfg)
    proc = CLIPImageProcessor(**full)
    return proc.preprocess([rgb], return_tensors="np")["pixel_values"][0]


# ------------------------------------------------------------------------------------------------ cases


def cfg(size=56, crop=56, resample=3, **extra):
    c = {"size": size, "crop_size": crop, "resample": resample, "image_mean": CLIP_MEAN, "image_std": CLIP_STD}
    c.update(extra)
    return c


def case_list():
    cases = []

    def add(name, src, mode, config, store_pixel_values=False, order="pillow13"):
        cases.append({"name": name, "source": src, "mode": mode, "config": config,
                      "store_pixel_values": store_pixel_values, "pass_order": order})

    modes = ["pad", "resize", "shortest_edge_center_crop"]
    # every mode x bicubic/bilinear on up/down-scaling and extreme aspect ratios, size 56
    for src in ["rgb_64x48.png", "rgb_37x23.png", "rgb_23x37.png", "rgb_1x300.png", "rgb_300x1.png",
                "rgb_20x15.png", "rgb_160x120.png"]:
        stem = src[4:-4]
        for mode in modes:
            for rs in (3, 2) if stem in ("64x48", "37x23", "1x300", "300x1") else (3,):
                store = stem == "64x48" and mode == "pad" and rs == 3
                add(f"{stem}.{mode}.{RESAMPLE_NAMES[rs]}.56", src, mode, cfg(resample=rs), store)
    # crop smaller than the resized image, odd differences, dict sizes
    add("64x48.shortest_edge_center_crop.bicubic.45c32", "rgb_64x48.png", "shortest_edge_center_crop",
        cfg(size={"shortest_edge": 45}, crop=32), True)
    add("37x23.shortest_edge_center_crop.bicubic.29c(20x27)", "rgb_37x23.png", "shortest_edge_center_crop",
        cfg(size=29, crop={"height": 20, "width": 27}))
    add("23x37.shortest_edge_center_crop.bilinear.33c31", "rgb_23x37.png", "shortest_edge_center_crop",
        cfg(size=33, crop=31, resample=2))
    add("64x48.resize.bicubic.(40x24)", "rgb_64x48.png", "resize",
        cfg(size={"height": 40, "width": 24}, crop={"height": 40, "width": 24}))
    add("64x48.shortest_edge_center_crop.bicubic.(30x70)c(24x64)", "rgb_64x48.png", "shortest_edge_center_crop",
        cfg(size={"height": 30, "width": 70}, crop={"height": 24, "width": 64}))
    # the pass order: Pillow 13 runs the vertical pass first when the height shrinks much more than the width;
    # Pillow <= 12 always ran the horizontal pass first
    add("64x48.shortest_edge_center_crop.bicubic.(30x70)c(24x64).horizontal_first", "rgb_64x48.png",
        "shortest_edge_center_crop", cfg(size={"height": 30, "width": 70}, crop={"height": 24, "width": 64}),
        order="horizontal_first")
    add("23x37.resize.bicubic.(20x30)", "rgb_23x37.png", "resize", cfg(size={"height": 20, "width": 30},
                                                                       crop={"height": 20, "width": 30}))
    add("23x37.resize.bicubic.(20x30).horizontal_first", "rgb_23x37.png", "resize",
        cfg(size={"height": 20, "width": 30}, crop={"height": 20, "width": 30}), order="horizontal_first")
    add("160x120.resize.bilinear.(40x150)", "rgb_160x120.png", "resize",
        cfg(size={"height": 40, "width": 150}, crop={"height": 40, "width": 150}, resample=2))
    add("160x120.resize.bilinear.(40x100)", "rgb_160x120.png", "resize",
        cfg(size={"height": 40, "width": 100}, crop={"height": 40, "width": 100}, resample=2))
    add("23x37.resize.bicubic.56.horizontal_first", "rgb_23x37.png", "resize", cfg(), order="horizontal_first")
    # crop larger than the resized image: transformers' zero padding (and its odd-difference quirk)
    add("37x23.shortest_edge_center_crop.bicubic.(20x25)c(24x28)", "rgb_37x23.png", "shortest_edge_center_crop",
        cfg(size={"height": 20, "width": 25}, crop={"height": 24, "width": 28}))
    add("37x23.shortest_edge_center_crop.bicubic.(20x25)c(23x30)", "rgb_37x23.png", "shortest_edge_center_crop",
        cfg(size={"height": 20, "width": 25}, crop={"height": 23, "width": 30}))
    # no resize, no crop
    add("37x23.shortest_edge_center_crop.none", "rgb_37x23.png", "shortest_edge_center_crop",
        cfg(do_resize=False, do_center_crop=False))
    # strong up- and down-scaling, a size equal to the input (pass skipped)
    add("20x15.pad.bicubic.101", "rgb_20x15.png", "pad", cfg(size=101, crop=101))
    add("160x120.resize.bicubic.17", "rgb_160x120.png", "resize", cfg(size=17, crop=17))
    add("160x120.shortest_edge_center_crop.bicubic.120", "rgb_160x120.png", "shortest_edge_center_crop",
        cfg(size=120, crop=120))
    add("64x48.pad.bicubic.64", "rgb_64x48.png", "pad", cfg(size=64, crop=64))
    # the other Pillow filters, down and up
    for rs in (1, 4, 5):
        add(f"64x48.resize.{RESAMPLE_NAMES[rs]}.56", "rgb_64x48.png", "resize", cfg(resample=rs))
        add(f"64x48.shortest_edge_center_crop.{RESAMPLE_NAMES[rs]}.21", "rgb_64x48.png",
            "shortest_edge_center_crop", cfg(size=21, crop=21, resample=rs))
    # other pixel formats (converted to RGB first, as Q-Align's Image.open(...).convert("RGB"))
    for src in ["grey_40x30.png", "greyalpha_33x21.png", "rgba_45x31.png", "palette_50x30.png",
                "grey16_30x20.png", "rgb16_30x20.png", "greyalpha16_24x16.png", "grey4_16x8.png",
                "grey1_16x8.png", "palette4_16x8.png", "grey16trns_12x8.png"]:
        add(f"{src[:-4]}.pad.bicubic.32", src, "pad", cfg(size=32, crop=32))
    # JPEGs: from Pillow's decoded pixels (stored in decoded.*), so the resize is checked exactly
    for src in ["photo_64x48.jpg", "photo444_37x23.jpg", "grey_40x30.jpg"]:
        add(f"{src}.pad.bicubic.32", src, "pad", cfg(size=32, crop=32))
        add(f"{src}.shortest_edge_center_crop.bicubic.32", src, "shortest_edge_center_crop",
            cfg(size=32, crop=32))
    return cases


# -------------------------------------------------------------------------------------------- safetensors


def save_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32"}[arr.dtype]
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs))


def main():
    files = make_images()
    tensors = {}
    decoded = {}
    manifest_files = []
    for name in sorted(files):
        im = Image.open(IMAGES / name)
        rgb = im.convert("RGB")
        arr = np.asarray(rgb, dtype=np.uint8)
        decoded[name] = rgb
        key = f"decoded.{name}"
        tensors[key] = arr
        fmt = im.format
        manifest_files.append({
            "file": f"images/{name}", "format": fmt, "pillow_mode": im.mode, "size_wh": list(im.size),
            "decoded": key, "lossy": fmt == "JPEG",
        })

    manifest_cases = []
    checked = 0
    for c in case_list():
        rgb = decoded[c["source"]]
        u8 = pipeline(rgb, c["mode"], c["config"], c["pass_order"])
        key = f"case.{c['name']}"
        tensors[key] = u8
        entry = {"name": c["name"], "source": f"images/{c['source']}", "decoded": f"decoded.{c['source']}",
                 "mode": c["mode"], "config": c["config"], "pass_order": c["pass_order"], "expected_u8": key,
                 "shape_hwc": list(u8.shape)}
        ours = pixel_values(u8, c["config"])
        ref = transformers_pixel_values(rgb, c["mode"], c["config"]) if c["pass_order"] == "pillow13" else None
        if ref is not None:
            assert ref.shape == ours.shape, (c["name"], ref.shape, ours.shape)
            assert np.array_equal(ref, ours), c["name"]
            checked += 1
            entry["transformers_checked"] = True
        if c["store_pixel_values"]:
            assert ref is not None, c["name"]
            pk = f"pixel_values.{c['name']}"
            tensors[pk] = ref
            entry["expected_pixel_values"] = pk
        assert all(e["name"] != c["name"] for e in manifest_cases), c["name"]
        manifest_cases.append(entry)

    generator = {
        "script": "scripts/gen_pillow_cases.py",
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "libwebp": features.version("webp"),
        "libtiff": features.version("libtiff"),
        "zlib": features.version("zlib"),
        "transformers": getattr(transformers, "__version__", None),
        "transformers_checked_cases": checked,
    }
    save_safetensors(OUT / "expected.safetensors", tensors, {"pillow": PIL.__version__})
    manifest = {
        "generator": generator,
        "conventions": {
            "decoded": "Image.open(file).convert('RGB') as uint8 [H, W, 3]",
            "expected_u8": "uint8 [H, W, 3] after the mode's geometric steps (pad/resize, CLIP resize, center crop)",
            "expected_pixel_values": "float32 [3, H, W]: transformers CLIPImageProcessor output",
            "pad_background": "tuple(int(m * 255) for m in image_mean) = (122, 116, 104) for the CLIP mean",
            "pass_order": "pillow13: Pillow 13's choice (vertical pass first when (H - h) > 0 and "
                          "(H - h) > (W - w) * 2), asserted on every resize; horizontal_first: Pillow <= 12",
            "resample": RESAMPLE_NAMES,
        },
        "files": manifest_files,
        "cases": manifest_cases,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{len(manifest_files)} files, {len(manifest_cases)} cases ({checked} checked against transformers), "
          f"{total} bytes in {OUT}")


if __name__ == "__main__":
    main()
