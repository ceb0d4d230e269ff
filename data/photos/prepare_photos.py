#!/usr/bin/env python3
"""Copy the bundled photographs of the embedded synthetic IQA set into data/photos/.

Sources: /work/shared/data/photos/ (scikit-image 0.26 and scikit-learn 1.9 wheel data; licences in data/photos/ATTRIBUTION.md).
Each photo is converted to RGB (the two grey ones too: three equal channels) and downscaled (Pillow LANCZOS) so that its long side is at most 384 px,
then written as PNG. Run from the repository root: python3 data/photos/prepare_photos.py [SRC_DIR]
"""
import sys
from pathlib import Path

from PIL import Image

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/photos")
DST = Path("data/photos")
PHOTOS = [
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
    "camera.png", "coins.png", "hubble_deep_field.jpg", "china.jpg", "flower.jpg",
]
LONG_SIDE = 384

DST.mkdir(parents=True, exist_ok=True)
for name in PHOTOS:
    im = Image.open(SRC / name).convert("RGB")
    scale = LONG_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    out = DST / (Path(name).stem + ".png")
    im.save(out, optimize=True)
    print(out, im.size)
