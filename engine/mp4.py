"""MP4 files of H.264 video (engine/h264.py): written and read back, in plain Python.

A clip is one video track, no audio, `moov` before `mdat` (a browser plays it while it downloads),
every frame one sample. `read` gives back what a player would see (size, frames, frame rate,
duration) and `frames` decodes them, for Extend (a clip continued from its frames) and refitting.

    data = mp4.write(frames, fps=16, bitrate=2_000_000)
    info = mp4.read(data)    # Clip(width, height, frames, fps, duration)
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from engine import h264

TIMESCALE = 90_000  # ticks a second: an integer frame duration for 8, 16, 24 and 30 fps


@dataclass(frozen=True)
class Clip:
    width: int
    height: int
    frames: int
    fps: float
    samples: list[bytes]  # length-prefixed NAL units (AVCC), one per frame
    sps: list[bytes]  # every parameter set the stream uses (a scene-cut IDR may bring new ones)
    pps: list[bytes]

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def write(frames: Sequence[np.ndarray], fps: int, bitrate: int) -> bytes:
    """RGB frames (H, W, 3 uint8, even sides) as an H.264 MP4 at about `bitrate` bits a second (less
    where a frame of noise-like detail overflows the encoder at that rate)."""
    for _ in range(4):
        try:
            units = h264.encode(frames, fps, bitrate)
            break
        except h264.FrameTooBig:
            bitrate //= 2
    else:
        units = h264.encode(frames, fps, bitrate)
    nals = [_nal_units(unit) for unit in units]
    sps = list(dict.fromkeys(n for unit in nals for n in unit if n[0] & 0x1F == 7))
    pps = list(dict.fromkeys(n for unit in nals for n in unit if n[0] & 0x1F == 8))
    samples = [b"".join(struct.pack(">I", len(n)) + n for n in unit if n[0] & 0x1F not in (7, 8)) for unit in nals]
    keys = [i + 1 for i, unit in enumerate(nals) if any(n[0] & 0x1F == 5 for n in unit)]
    h, w = frames[0].shape[:2]
    return _file(w, h, fps, samples, keys, sps, pps)


def read(data: bytes) -> Clip:
    """The video track of an MP4 this module wrote (or any plain one-track H.264 MP4); ValueError otherwise."""
    try:
        moov = _child(_boxes(data), b"moov")
        trak = _child(_boxes(moov), b"trak")
        mdia = _child(_boxes(trak), b"mdia")
        timescale, duration = _mdhd(_child(_boxes(mdia), b"mdhd"))
        stbl = _child(_boxes(_child(_boxes(mdia), b"minf")), b"stbl")
        tables = dict(_boxes(stbl))
        avc1 = tables[b"stsd"][8 + 8:]  # full box header, entry count; then the avc1 entry's body
        width, height = struct.unpack(">HH", avc1[24:28])
        sps, pps = _avcc(dict(_boxes(avc1[78:]))[b"avcC"])
        sizes = _stsz(tables[b"stsz"])
        offsets = _stco(tables[b"stco"])
        per_chunk = _stsc(tables[b"stsc"], len(offsets))
    except (KeyError, StopIteration, struct.error, IndexError) as error:
        raise ValueError(f"not an H.264 MP4 clip ({error})") from None
    samples, n = [], 0
    for offset, count in zip(offsets, per_chunk, strict=True):
        for _ in range(count):
            samples.append(data[offset: offset + sizes[n]])
            offset += sizes[n]
            n += 1
    fps = len(samples) * timescale / duration if duration else 0.0
    return Clip(width, height, len(samples), round(fps, 3), samples, sps, pps)


def frames(data: bytes) -> Iterator[np.ndarray]:
    """The clip's frames, decoded (RGB)."""
    clip = read(data)
    start = b"\x00\x00\x00\x01"
    sets = b"".join(start + n for n in clip.sps + clip.pps)
    units = [sets + _annex_b(clip.samples[0])] + [_annex_b(s) for s in clip.samples[1:]]
    return h264.decode(units)


# -- writing -------------------------------------------------------------------------


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _file(w: int, h: int, fps: int, samples: list[bytes], keys: list[int], sps: list[bytes], pps: list[bytes]) -> bytes:
    delta = round(TIMESCALE / fps)
    duration = delta * len(samples)
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41")
    avcc = _box(b"avcC", bytes([1, sps[0][1], sps[0][2], sps[0][3], 0xFF, 0xE0 | len(sps)]),
                *(struct.pack(">H", len(n)) + n for n in sps), bytes([len(pps)]),
                *(struct.pack(">H", len(n)) + n for n in pps))
    avc1 = _box(b"avc1", b"\x00" * 6, struct.pack(">H", 1), b"\x00" * 16, struct.pack(">HH", w, h),
                struct.pack(">II", 0x480000, 0x480000), b"\x00" * 4, struct.pack(">H", 1), b"\x00" * 32,
                struct.pack(">Hh", 0x18, -1), avcc)

    def moov(mdat_start: int) -> bytes:
        stbl = _box(
            b"stbl",
            _full(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
            _full(b"stts", 0, 0, struct.pack(">III", 1, len(samples), delta)),
            _full(b"stss", 0, 0, struct.pack(">I", len(keys)), *(struct.pack(">I", k) for k in keys)),
            _full(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(samples), 1)),
            _full(b"stsz", 0, 0, struct.pack(">II", 0, len(samples)), *(struct.pack(">I", len(s)) for s in samples)),
            _full(b"stco", 0, 0, struct.pack(">II", 1, mdat_start)),
        )
        minf = _box(b"minf", _full(b"vmhd", 0, 1, b"\x00" * 8),
                    _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1))), stbl)
        mdia = _box(b"mdia", _full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, duration, 0x55C4, 0)),
                    _full(b"hdlr", 0, 0, b"\x00" * 4, b"vide", b"\x00" * 12, b"tastemaker clip\x00"), minf)
        tkhd = _full(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, 1, 0, duration), b"\x00" * 8,
                     struct.pack(">hhhH", 0, 0, 0, 0), _MATRIX, struct.pack(">II", w << 16, h << 16))
        mvhd = _full(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, duration), struct.pack(">IH", 0x10000, 0x100),
                     b"\x00" * 10, _MATRIX, b"\x00" * 24, struct.pack(">I", 2))
        return _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))

    size = len(ftyp) + len(moov(0)) + 8  # moov's size doesn't depend on the offset it holds
    return ftyp + moov(size) + _box(b"mdat", *samples)


def _nal_units(unit: bytes) -> list[bytes]:
    """Annex B (start codes) -> the NAL units."""
    out, i = [], 0
    starts = []
    while (i := unit.find(b"\x00\x00\x01", i)) != -1:
        starts.append(i + 3)
        i += 3
    for n, begin in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(unit)
        nal = unit[begin:end]
        if n + 1 < len(starts) and nal.endswith(b"\x00"):  # a 4-byte start code's leading zero
            nal = nal[:-1]
        out.append(nal)
    return out


def _annex_b(sample: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(sample):
        (n,) = struct.unpack(">I", sample[i: i + 4])
        out += b"\x00\x00\x00\x01" + sample[i + 4: i + 4 + n]
        i += 4 + n
    return bytes(out)


# -- reading -------------------------------------------------------------------------


def _boxes(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    i = 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[i: i + 8])
        if size < 8 or i + size > len(data):
            raise struct.error(f"box {kind!r} runs past its parent")
        yield kind, data[i + 8: i + size]
        i += size


def _child(boxes: Iterator[tuple[bytes, bytes]], kind: bytes) -> bytes:
    return next(body for k, body in boxes if k == kind)


def _mdhd(body: bytes) -> tuple[int, int]:
    if body[0] == 1:
        return struct.unpack(">IQ", body[20:32])
    return struct.unpack(">II", body[12:20])


def _avcc(body: bytes) -> tuple[list[bytes], list[bytes]]:
    sets: list[list[bytes]] = []
    i, count = 6, body[5] & 0x1F
    for _ in range(2):  # the SPS, then the PPS (their count in a byte of its own)
        found = []
        for _ in range(count):
            (n,) = struct.unpack(">H", body[i: i + 2])
            found.append(body[i + 2: i + 2 + n])
            i += 2 + n
        sets.append(found)
        if len(sets) == 1:
            count, i = body[i], i + 1
    return sets[0], sets[1]


def _stsz(body: bytes) -> list[int]:
    size, count = struct.unpack(">II", body[4:12])
    return [size] * count if size else list(struct.unpack(f">{count}I", body[12: 12 + 4 * count]))


def _stco(body: bytes) -> list[int]:
    (count,) = struct.unpack(">I", body[4:8])
    return list(struct.unpack(f">{count}I", body[8: 8 + 4 * count]))


def _stsc(body: bytes, chunks: int) -> list[int]:
    (count,) = struct.unpack(">I", body[4:8])
    runs = [struct.unpack(">III", body[8 + 12 * i: 20 + 12 * i])[:2] for i in range(count)]
    per = []
    for i, (first, samples) in enumerate(runs):
        last = runs[i + 1][0] - 1 if i + 1 < len(runs) else chunks
        per += [samples] * (last - first + 1)
    return per
