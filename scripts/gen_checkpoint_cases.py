#!/usr/bin/env python3
"""Writes tests/fixtures/checkpoint-cases/: hostile and odd PyTorch pickles for biqa-checkpoint's loader tests.

Standard library only (no torch). Each file mimics torch.save's zip layout (`<name>/data.pkl`,
`<name>/version`, `<name>/data/<key>`):
- evil_global.bin: the pickle references `os.system` (a loader must refuse it, never call it);
- nested_hook.bin: strided.bin with `posix.system('true')` as the `backward_hooks` argument of
  `_rebuild_tensor_v2` (a callable hidden inside the rebuild arguments: the guard must refuse it as it reads it);
- stack_global.bin: a protocol-4 pickle naming `builtins.eval` through STACK_GLOBAL;
- strided.bin: one f32 tensor [2, 3] stored transposed (stride (1, 2)) with a storage offset of 1, the storage
  holding 7 floats [9, 0..5 in column-major order]: the loader must honour offset and strides;
- huge_view.bin: strided.bin's storage (7 floats) viewed as [20000, 20000] with strides (0, 0), as
  `torch.zeros(7).as_strided(...)` saves it: 1.6 GB of logical f32 over 28 bytes (issue #16: refuse, never
  materialise);
- short_storage.bin: strided.bin's view over a storage of 3 floats (the view reaches element 6): refused.
"""
import pathlib
import pickletools
import struct
import zipfile

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/checkpoint-cases"



def write_zip(path, name, pkl_bytes, storages):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{name}/data.pkl", pkl_bytes)
        z.writestr(f"{name}/version", "3\n")
        for key, data in storages.items():
            z.writestr(f"{name}/data/{key}", data)


def raw_pickle(ops):
    return b"\x80\x02" + ops + b"."


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    # {'w': os.system('true')} written by hand: GLOBAL os system, a string arg, REDUCE.
    ops = b"}q\x00X\x01\x00\x00\x00wq\x01cos\nsystem\nq\x02X\x04\x00\x00\x00trueq\x03\x85q\x04Rq\x05s"
    write_zip(OUT / "evil_global.bin", "evil_global", raw_pickle(ops), {})

    # A strided tensor through torch._utils._rebuild_tensor_v2(storage, 1, (2, 3), (1, 2), False, OrderedDict()).
    storage = struct.pack("<7f", 9.0, 0.0, 3.0, 1.0, 4.0, 2.0, 5.0)  # column-major of [[0,1,2],[3,4,5]] after 1 pad
    ops = (
        b"}q\x00X\x01\x00\x00\x00wq\x01"
        b"ctorch._utils\n_rebuild_tensor_v2\nq\x02("
        b"(X\x07\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K\x07tq\x07Q"
        b"K\x01K\x02K\x03\x86q\x08K\x01K\x02\x86q\t\x89ccollections\nOrderedDict\nq\n)Rq\x0btq\x0cRq\rs"
    )
    write_zip(OUT / "strided.bin", "strided", raw_pickle(ops), {"0": storage})
    # The same tensor with a hostile callable as backward_hooks.
    hook = b"cposix\nsystem\nq\nX\x04\x00\x00\x00true\x85Rq\x0b"
    nested = ops.replace(b"ccollections\nOrderedDict\nq\n)Rq\x0b", hook)
    assert nested != ops
    write_zip(OUT / "nested_hook.bin", "nested_hook", raw_pickle(nested), {"0": storage})
    # A view far larger than its storage, and a view that reaches past its storage's end.
    huge = ops.replace(b"K\x02K\x03\x86q\x08K\x01K\x02\x86", b"M\x20\x4eM\x20\x4e\x86q\x08K\x00K\x00\x86")
    assert huge != ops
    write_zip(OUT / "huge_view.bin", "huge_view", raw_pickle(huge), {"0": storage})
    short = ops.replace(b"K\x07tq\x07Q", b"K\x03tq\x07Q")
    assert short != ops
    write_zip(OUT / "short_storage.bin", "short_storage", raw_pickle(short), {"0": storage[:12]})
    # {'w': builtins.eval('1')} through STACK_GLOBAL (protocol 4).
    ops4 = b"}q\x00X\x01\x00\x00\x00wq\x01\x8c\x08builtins\x8c\x04eval\x93X\x01\x00\x00\x001\x85Rs"
    write_zip(OUT / "stack_global.bin", "stack_global", b"\x80\x04" + ops4 + b".", {})
    for f in ("evil_global", "strided", "nested_hook", "stack_global", "huge_view", "short_storage"):
        with zipfile.ZipFile(OUT / f"{f}.bin") as z:
            pickletools.dis(z.read(f"{f}/data.pkl"), out=open("/dev/null", "w"))  # well-formed
    print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
