#!/usr/bin/env python3
"""Writes tests/fixtures/hostile/: images whose ancillary data is a decompression bomb (standard library only).

- icc_bomb.png: a valid 4x4 RGB PNG whose iCCP chunk inflates to 1 GiB of zeros (1 MB on disk). Pillow refuses it;
  biqa must decode it within its ancillary-data budget (64 MiB), not allocate the gigabyte.
"""
import pathlib
import struct
import zlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/hostile"


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    profile = zlib.compress(b"\0" * (1 << 30), 9)
    rows = b"".join(b"\0" + b"\x80" * 12 for _ in range(4))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"iCCP", b"bomb\0\0" + profile)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    (OUT / "icc_bomb.png").write_bytes(png)
    print("wrote", OUT / "icc_bomb.png", len(png), "bytes")


if __name__ == "__main__":
    main()
