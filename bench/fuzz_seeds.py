#!/usr/bin/env python3
"""Small synthetic disk images for the `signatures` fuzz target (bench/fuzz.sh).

Real loop-device images are far too big for a corpus; each seed here is 256 KiB with one
kind of header at the offsets `node-agent/src/probe/signatures.rs` reads, so the fuzzer starts
inside every parser instead of having to discover each magic. The first byte is the target's
flags byte (bit 0: 4096-byte sectors, bit 1: declared size larger than the image).
"""
import struct
import sys
from pathlib import Path

SIZE = 256 * 1024


def image():
    return bytearray(SIZE)


def put(b, off, data):
    b[off:off + len(data)] = data


def gpt_header(my_lba, entries_lba=2):
    h = bytearray(512)
    put(h, 0, b"EFI PART")
    put(h, 12, struct.pack("<I", 92))
    put(h, 24, struct.pack("<Q", my_lba))
    put(h, 72, struct.pack("<Q", entries_lba))
    put(h, 80, struct.pack("<I", 128))
    put(h, 84, struct.pack("<I", 128))
    return h


def seeds():
    b = image()
    b[510:512] = b"\x55\xaa"
    b[446 + 4] = 0xEE
    put(b, 512, gpt_header(1))
    put(b, SIZE - 512, gpt_header(SIZE // 512 - 1))
    put(b, 1024, bytes.fromhex("fecafeca039b304fb4c6b4b80ceff106"))
    put(b, 1024 + 56, "ceph block".encode("utf-16-le"))
    yield "gpt", 0, b

    b = image()
    put(b, 4096, gpt_header(1, 2)[:512])
    yield "gpt-4k", 1, b

    b = image()
    b[510:512] = b"\x55\xaa"
    put(b, 446, bytes([0x80, 0, 0, 0, 0x83, 0, 0, 0]) + struct.pack("<II", 2048, 4096))
    yield "dos", 0, b

    b = image()
    put(b, 1024 + 56, b"\x53\xef")
    put(b, 1024 + 92, struct.pack("<III", 4, 0x42, 3))
    put(b, 1024 + 104, bytes(range(1, 17)))
    put(b, 1024 + 120, b"data")
    yield "ext4", 0, b

    b = image()
    put(b, 0, b"XFSB")
    put(b, 32, bytes(range(16)))
    put(b, 108, b"xfslabel")
    yield "xfs", 0, b

    b = image()
    put(b, 0x10040, b"_BHRfS_M")
    put(b, 0x10000 + 0x12B, b"btr")
    yield "btrfs", 0, b

    b = image()
    put(b, 4096 - 10, b"SWAPSPACE2")
    put(b, 1024 + 28, b"swaplabel")
    yield "swap", 0, b

    b = image()
    put(b, 512, b"LABELONE")
    put(b, 536, b"LVM2 001")
    put(b, 544, b"abcdefghijklmnopqrstuvwxyz012345")
    # data area list (one entry, then the terminator), then the metadata area at 4096
    put(b, 544 + 32 + 8, struct.pack("<QQQQ", 1 << 20, 0, 0, 0))
    put(b, 544 + 32 + 8 + 32, struct.pack("<QQ", 4096, 1 << 20))
    put(b, 4096 + 4, b" LVM2 x[5A%r0N*>")
    put(b, 4096 + 40, struct.pack("<QQ", 512, 64))
    put(b, 4096 + 512, b"ceph-vg {\nid = \"x\"\n")
    yield "lvm", 0, b

    b = image()
    b[0] = 0xEB
    put(b, 11, struct.pack("<H", 512))
    b[13] = 8
    put(b, 82, b"FAT32   ")
    put(b, 71, b"MYDISK     ")
    b[510:512] = b"\x55\xaa"
    yield "vfat", 0, b

    b = image()
    put(b, 0, b"bluestore block device\n01234567-89ab-cdef-0123-456789abcdef\n")
    yield "bluestore", 2, b

    b = image()
    put(b, 0, b"LUKS\xba\xbe")
    put(b, 4096, bytes([0xFC, 0x4E, 0x2B, 0xA9]))
    put(b, 0x8001, b"CD001")
    yield "other", 0, b


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, flags, img in seeds():
        (out / f"seed-{name}").write_bytes(bytes([flags]) + bytes(img))


if __name__ == "__main__":
    main()
