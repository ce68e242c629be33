"""Small files that unpack to gigabytes, made in a fraction of a second (one compressed chunk of zeros, repeated),
and ``dida`` run in a child process whose address space is capped (``RLIMIT_AS``) that reports its peak resident
memory: what the memory tests and ``Testing/hostile_pass.py`` share."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 64 << 20  # 64 MiB of zeros, compressed once

#: Runs ``python -m DiDALib.cli ARGV`` in-process with RLIMIT_AS capped, then writes its peak RSS (VmHWM, bytes)
#: and exit code as JSON to the file named first.
_LAUNCHER = r"""
import json, os, resource, sys
report, cap, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
if cap:
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
code = 1
try:
    if argv[:1] == ["--worker"]:
        from DiDALib.worker.__main__ import main
        argv = argv[1:]
    else:
        from DiDALib.cli import main
    code = main(argv)
except SystemExit as exc:  # as the interpreter ends: None is 0, a message is 1
    code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
except MemoryError:
    code = "MemoryError"
finally:
    with open(report, "w") as f:
        json.dump({"code": code, "peak": peak()}, f)
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)
"""


def run_capped(argv, tmp: Path, cap: int = 6 << 30, timeout: float = 300, stdin: bytes | None = None,
               root: Path = ROOT, env: dict[str, str] | None = None) -> tuple[object, str, int]:
    """``dida ARGV`` (``["--worker", ...]``: the worker, fed ``stdin``) in a child process under an address-space
    cap: (exit code, stderr, peak RSS in bytes). The cap leaves room for torch's own reservations (about 3.6 GB of
    address space) and little more. ``root``: the checkout whose DiDALib runs; ``env``: variables set for it."""
    report = tmp / f"report-{os.getpid()}-{len(list(tmp.glob('report-*')))}.json"
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(env or {}))
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(report), str(cap), *map(str, argv)], cwd=tmp,
                          env=env, capture_output=True, timeout=timeout, input=stdin if stdin is not None else b"")
    proc.stderr = proc.stderr.decode(errors="replace")
    try:
        info = json.loads(report.read_text())
    except (OSError, ValueError):  # killed before it could report (the cap hit native code): its exit status
        info = {"code": proc.returncode, "peak": 0}
    report.unlink(missing_ok=True)
    return info["code"], proc.stderr, info["peak"]


def _zero_gzip_member() -> bytes:
    return gzip.compress(bytes(CHUNK), compresslevel=9, mtime=0)


def nrrd_bomb(path: Path, chunks: int = 24, width: int = 4096) -> Path:
    """A gzip NRRD of ``chunks`` x 64 MiB of uint8 zeros (1.5 GiB for 24) in ``chunks`` x 64 kB: gzip members
    concatenated, each the same chunk."""
    depth = CHUNK // width
    header = (f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: {width} {depth} {chunks}\nspacings: 0.01 0.004 0.1\n"
              "encoding: gzip\n\n").encode()
    member = _zero_gzip_member()
    with open(path, "wb") as f:
        f.write(header)
        for _ in range(chunks):
            f.write(member)
    return path


def _raw_deflate_zeros(chunks: int) -> bytes:
    """Raw deflate of ``chunks`` x 64 MiB of zeros: one chunk compressed up to a full flush (which resets the
    compressor, so every further chunk compresses to the same bytes), then the end of the stream."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(CHUNK)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * chunks + c.flush()


def tiff_bomb(path: Path, pages: int = 100, width: int = 4096, height: int = 4096) -> Path:
    """A multi-page TIFF of ``pages`` uint8 pages of zeros (1.6 GiB for 100 of 4096 x 4096), every page's one
    deflate strip the same bytes in the file."""
    strip = zlib.compress(bytes(width * height), 9)
    entries = 9
    ifd_size = 2 + entries * 12 + 4
    first_ifd = 8 + len(strip)
    out = bytearray(b"II*\x00" + struct.pack("<I", first_ifd) + strip)
    for page in range(pages):
        offset = first_ifd + page * ifd_size
        nxt = offset + ifd_size if page + 1 < pages else 0
        tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1), (273, 4, 8),
                (277, 3, 1), (278, 4, height), (279, 4, len(strip))]
        out += struct.pack("<H", entries)
        for tag, kind, value in tags:
            out += struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3
                                                       else struct.pack("<I", value))
        out += struct.pack("<I", nxt)
    path.write_bytes(bytes(out))
    return path


def npz_bomb(path: Path, name: str, shape: tuple[int, ...], dtype: str = "<f4", members: dict | None = None) -> Path:
    """An npz whose member ``name`` is an array of zeros of ``shape`` (a multiple of 64 MiB), stored deflated in a
    few kB per 64 MiB, beside ``members`` (small arrays saved as they are)."""
    import io

    import numpy as np

    from numpy.lib import format as npy

    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    payload_size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    assert payload_size % CHUNK == 0, "the bomb's size must be a whole number of chunks"
    chunks = payload_size // CHUNK
    head = header.getvalue()
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    prefix = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    data = prefix + _raw_deflate_zeros(chunks)
    crc = zlib.crc32(head)
    zero = bytes(CHUNK)
    for _ in range(chunks):
        crc = zlib.crc32(zero, crc)
    size = len(head) + payload_size
    small = io.BytesIO()
    np.savez(small, **(members or {}))
    import zipfile

    with zipfile.ZipFile(small) as z:
        existing = [(i, z.read(i.filename)) for i in z.infolist()]
    with open(path, "wb") as f:
        central = []
        for info, content in existing:  # the small members, stored
            central.append(_local(f, info.filename, content, zlib.crc32(content), len(content), 0))
        central.append(_local(f, f"{name}.npy", data, crc & 0xFFFFFFFF, size, 8))
        start = f.tell()
        for entry in central:
            f.write(entry)
        end = f.tell()
        _zip64_end(f, len(central), end - start, start)
    return path


def _local(f, name: str, data: bytes, crc: int, size: int, method: int) -> bytes:
    """Write one zip64 local entry; its central directory record."""
    offset = f.tell()
    encoded = name.encode()
    extra = struct.pack("<HHQQ", 1, 16, size, len(data))
    f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                        len(encoded), len(extra)) + encoded + extra + data)
    cextra = struct.pack("<HHQQQ", 1, 24, size, len(data), offset)
    return (struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                        len(encoded), len(cextra), 0, 0, 0, 0, 0xFFFFFFFF) + encoded + cextra)


def _zip64_end(f, count: int, size: int, start: int) -> None:
    here = f.tell()
    f.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, size, start))
    f.write(struct.pack("<IIQI", 0x07064B50, 0, here, 1))
    f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A tiny PNG that claims to be width x height: what a decompression bomb looks like to Pillow."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path
