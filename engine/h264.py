"""H.264 through Cisco's OpenH264 (BSD-2-Clause), called with ctypes: encode RGB frames, decode them back.

Why not FFmpeg: every FFmpeg that pip or Debian ships with an H.264 encoder is a GPL build (PyAV's and
imageio-ffmpeg's wheels bundle libx264/libx265; Debian's ffmpeg is --enable-gpl). OpenH264 is BSD and is
a system library (`apt-get install libopenh264-7`, or Cisco's own binary, whose patent licence covers
H.264 for its users), so the default install has no copyleft code. Only the encoder's and decoder's
plain C entry points are used (the vtables in codec_api.h), no headers or compiler at install time.

Torch-free (numpy only): the worker encodes beside the GPU; posting.py re-encodes a clip to fit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator, Sequence

import numpy as np

LIBRARY_NAMES = ("libopenh264.so.7", "libopenh264.so.6", "libopenh264.so.2.4.1", "libopenh264.so", "openh264")

# codec_app_def.h / codec_def.h
_CAMERA_VIDEO_REAL_TIME = 0  # the one camera usage this OpenH264 accepts for a single layer
_RC_BITRATE_MODE = 1
_VIDEO_FORMAT_I420 = 23
_FRAME_TYPE_SKIP = 4
_ENCODER_OPTION_DATAFORMAT = 0
_ENCODER_OPTION_IDR_INTERVAL = 1
_ENCODER_OPTION_RC_FRAME_SKIP = 9
_ENCODER_OPTION_TRACE_LEVEL = 21
_DECODER_OPTION_TRACE_LEVEL = 9
_LOG_QUIET = 0
_MAX_LAYERS = 128


class H264Unavailable(RuntimeError):
    """OpenH264 is not installed: the message says how to install it."""


class FrameTooBig(RuntimeError):
    """A frame's bits overflowed the encoder's buffer (a very detailed frame at a high bitrate)."""


class _EncParamBase(ctypes.Structure):
    _fields_ = [("iUsageType", ctypes.c_int), ("iPicWidth", ctypes.c_int), ("iPicHeight", ctypes.c_int),
                ("iTargetBitrate", ctypes.c_int), ("iRCMode", ctypes.c_int), ("fMaxFrameRate", ctypes.c_float)]


class _SourcePicture(ctypes.Structure):
    _fields_ = [("iColorFormat", ctypes.c_int), ("iStride", ctypes.c_int * 4), ("pData", ctypes.c_void_p * 4),
                ("iPicWidth", ctypes.c_int), ("iPicHeight", ctypes.c_int), ("uiTimeStamp", ctypes.c_longlong)]


class _LayerBSInfo(ctypes.Structure):
    _fields_ = [("uiTemporalId", ctypes.c_ubyte), ("uiSpatialId", ctypes.c_ubyte), ("uiQualityId", ctypes.c_ubyte),
                ("eFrameType", ctypes.c_int), ("uiLayerType", ctypes.c_ubyte), ("iSubSeqId", ctypes.c_int),
                ("iNalCount", ctypes.c_int), ("pNalLengthInByte", ctypes.POINTER(ctypes.c_int)),
                ("pBsBuf", ctypes.POINTER(ctypes.c_ubyte))]


class _FrameBSInfo(ctypes.Structure):
    _fields_ = [("iLayerNum", ctypes.c_int), ("sLayerInfo", _LayerBSInfo * _MAX_LAYERS), ("eFrameType", ctypes.c_int),
                ("iFrameSizeInBytes", ctypes.c_int), ("uiTimeStamp", ctypes.c_longlong)]


class _VideoProperty(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint), ("eVideoBsType", ctypes.c_int)]


class _DecodingParam(ctypes.Structure):
    _fields_ = [("pFileNameRestructed", ctypes.c_char_p), ("uiCpuLoad", ctypes.c_uint), ("uiTargetDqLayer", ctypes.c_ubyte),
                ("eEcActiveIdc", ctypes.c_int), ("bParseOnly", ctypes.c_bool), ("sVideoProperty", _VideoProperty)]


class _SysMemBuffer(ctypes.Structure):
    _fields_ = [("iWidth", ctypes.c_int), ("iHeight", ctypes.c_int), ("iFormat", ctypes.c_int), ("iStride", ctypes.c_int * 2)]


class _BufferInfo(ctypes.Structure):
    _fields_ = [("iBufferStatus", ctypes.c_int), ("uiInBsTimeStamp", ctypes.c_ulonglong),
                ("uiOutYuvTimeStamp", ctypes.c_ulonglong), ("sSystemBuffer", _SysMemBuffer),
                ("pDst", ctypes.POINTER(ctypes.c_ubyte) * 3)]


_P = ctypes.c_void_p
_ENCODER_VTBL = [  # (name, restype, argtypes after the object pointer), in codec_api.h's order
    ("Initialize", ctypes.c_int, [ctypes.POINTER(_EncParamBase)]),
    ("InitializeExt", ctypes.c_int, [_P]),
    ("GetDefaultParams", ctypes.c_int, [_P]),
    ("Uninitialize", ctypes.c_int, []),
    ("EncodeFrame", ctypes.c_int, [ctypes.POINTER(_SourcePicture), ctypes.POINTER(_FrameBSInfo)]),
    ("EncodeParameterSets", ctypes.c_int, [_P]),
    ("ForceIntraFrame", ctypes.c_int, [ctypes.c_bool]),
    ("SetOption", ctypes.c_int, [ctypes.c_int, _P]),
    ("GetOption", ctypes.c_int, [ctypes.c_int, _P]),
]
_DECODER_VTBL = [
    ("Initialize", ctypes.c_long, [ctypes.POINTER(_DecodingParam)]),
    ("Uninitialize", ctypes.c_long, []),
    ("DecodeFrame", ctypes.c_int, [_P, ctypes.c_int, _P, _P, _P, _P]),
    ("DecodeFrameNoDelay", ctypes.c_int, [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte) * 3),
                                          ctypes.POINTER(_BufferInfo)]),
    ("DecodeFrame2", ctypes.c_int, [_P, ctypes.c_int, _P, _P]),
    ("FlushFrame", ctypes.c_int, [ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte) * 3), ctypes.POINTER(_BufferInfo)]),
    ("DecodeParser", ctypes.c_int, [_P, ctypes.c_int, _P]),
    ("DecodeFrameEx", ctypes.c_int, [_P, ctypes.c_int, _P, ctypes.c_int, _P, _P, _P, _P]),
    ("SetOption", ctypes.c_long, [ctypes.c_int, _P]),
    ("GetOption", ctypes.c_long, [ctypes.c_int, _P]),
]

_lib: ctypes.CDLL | None = None
_lock = threading.Lock()


def library() -> ctypes.CDLL:
    """The OpenH264 library (TASTEMAKER_OPENH264 names a file; else the system's), loaded once."""
    global _lib
    with _lock:
        if _lib is None:
            from engine.config import EngineSettings

            configured = EngineSettings().openh264
            names = [configured] if configured else [*LIBRARY_NAMES, ctypes.util.find_library("openh264")]
            for name in filter(None, names):
                try:
                    _lib = ctypes.CDLL(name)
                    break
                except OSError:
                    continue
            else:
                raise H264Unavailable(
                    "video needs the OpenH264 library (BSD): `apt-get install libopenh264-7`, or set "
                    "TASTEMAKER_OPENH264 to Cisco's libopenh264 file")
        return _lib


def available() -> str | None:
    """Where OpenH264 was found, or None (python -m engine.worker --check)."""
    try:
        return getattr(library(), "_name", "openh264")
    except H264Unavailable:
        return None


def _vtable(obj: ctypes.c_void_p, layout: list) -> dict:
    """The functions of an OpenH264 object (`ISVCEncoder*`: a pointer to a pointer to its vtable)."""
    table = ctypes.cast(ctypes.cast(obj, ctypes.POINTER(ctypes.c_void_p))[0], ctypes.POINTER(ctypes.c_void_p))
    return {name: ctypes.CFUNCTYPE(restype, _P, *args)(table[i]) for i, (name, restype, args) in enumerate(layout)}


def rgb_to_i420(frame: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 RGB frame as planar I420 (BT.601, limited range, as players assume); H and W even."""
    rgb = frame.astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    h, w = y.shape
    u = u.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    v = v.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return np.concatenate([p.ravel() for p in (y, u, v)]).round().clip(0, 255).astype(np.uint8)


def i420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u = u.repeat(2, axis=0).repeat(2, axis=1).astype(np.float32) - 128
    v = v.repeat(2, axis=0).repeat(2, axis=1).astype(np.float32) - 128
    y = (y.astype(np.float32) - 16) * 1.164
    rgb = np.stack([y + 1.596 * v, y - 0.392 * u - 0.813 * v, y + 2.017 * u], axis=-1)
    return rgb.round().clip(0, 255).astype(np.uint8)


def encode(frames: Sequence[np.ndarray], fps: float, bitrate: int) -> list[bytes]:
    """Each RGB frame as one H.264 access unit (Annex B: start codes, SPS/PPS before the first IDR)."""
    lib = library()
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"H.264 4:2:0 needs even sides, not {w}x{h}")
    handle = ctypes.c_void_p()
    if lib.WelsCreateSVCEncoder(ctypes.byref(handle)) != 0:
        raise RuntimeError("OpenH264 could not create an encoder")
    calls = _vtable(handle, _ENCODER_VTBL)
    try:
        quiet = ctypes.c_int(_LOG_QUIET)
        calls["SetOption"](handle, _ENCODER_OPTION_TRACE_LEVEL, ctypes.byref(quiet))
        params = _EncParamBase(_CAMERA_VIDEO_REAL_TIME, w, h, int(bitrate), _RC_BITRATE_MODE, float(fps))
        if calls["Initialize"](handle, ctypes.byref(params)) != 0:
            raise RuntimeError(f"OpenH264 refused {w}x{h} at {fps} fps, {bitrate} bit/s")
        for option, value in ((_ENCODER_OPTION_TRACE_LEVEL, quiet),(_ENCODER_OPTION_DATAFORMAT, ctypes.c_int(_VIDEO_FORMAT_I420)),
                              (_ENCODER_OPTION_RC_FRAME_SKIP, ctypes.c_bool(False)),  # every frame is a sample
                              (_ENCODER_OPTION_IDR_INTERVAL, ctypes.c_int(0))):
            calls["SetOption"](handle, option, ctypes.byref(value))
        units = []
        info = _FrameBSInfo()
        for n, frame in enumerate(frames):
            planes = rgb_to_i420(frame)
            base = planes.ctypes.data
            picture = _SourcePicture(_VIDEO_FORMAT_I420, (ctypes.c_int * 4)(w, w // 2, w // 2, 0),
                                     (ctypes.c_void_p * 4)(base, base + w * h, base + w * h + (w // 2) * (h // 2), 0),
                                     w, h, round(n * 1000 / fps))
            ctypes.memset(ctypes.byref(info), 0, ctypes.sizeof(info))
            if calls["EncodeFrame"](handle, ctypes.byref(picture), ctypes.byref(info)) != 0:
                raise FrameTooBig(f"OpenH264 could not encode frame {n} at {bitrate} bit/s")
            if info.eFrameType == _FRAME_TYPE_SKIP:
                raise RuntimeError(f"OpenH264 skipped frame {n}")
            unit = bytearray()
            for layer in info.sLayerInfo[: info.iLayerNum]:
                size = sum(layer.pNalLengthInByte[i] for i in range(layer.iNalCount))
                unit += ctypes.string_at(layer.pBsBuf, size)
            units.append(bytes(unit))
        calls["Uninitialize"](handle)
        return units
    finally:
        lib.WelsDestroySVCEncoder(handle)


def decode(units: Sequence[bytes]) -> Iterator[np.ndarray]:
    """Annex B access units back to RGB frames, in order."""
    lib = library()
    handle = ctypes.c_void_p()
    if lib.WelsCreateDecoder(ctypes.byref(handle)) != 0:
        raise RuntimeError("OpenH264 could not create a decoder")
    calls = _vtable(handle, _DECODER_VTBL)
    try:
        quiet = ctypes.c_int(_LOG_QUIET)
        calls["SetOption"](handle, _DECODER_OPTION_TRACE_LEVEL, ctypes.byref(quiet))
        params = _DecodingParam(None, 0, 0, 0, False, _VideoProperty(ctypes.sizeof(_VideoProperty), 0))
        if calls["Initialize"](handle, ctypes.byref(params)) != 0:
            raise RuntimeError("OpenH264 could not start a decoder")
        planes = (ctypes.POINTER(ctypes.c_ubyte) * 3)()
        info = _BufferInfo()
        for unit in units:
            ctypes.memset(ctypes.byref(info), 0, ctypes.sizeof(info))
            state = calls["DecodeFrameNoDelay"](handle, unit, len(unit), ctypes.byref(planes), ctypes.byref(info))
            if state != 0:
                raise ValueError(f"not a readable H.264 stream (decoder state {state:#x})")
            if info.iBufferStatus == 1:
                yield _picture(info)
        calls["Uninitialize"](handle)
    finally:
        lib.WelsDestroyDecoder(handle)


def _picture(info: _BufferInfo) -> np.ndarray:
    memory = info.sSystemBuffer
    w, h, (stride_y, stride_uv) = memory.iWidth, memory.iHeight, memory.iStride

    def plane(i: int, stride: int, rows: int, cols: int) -> np.ndarray:
        data = np.ctypeslib.as_array(info.pDst[i], shape=(rows * stride,))
        return data.reshape(rows, stride)[:, :cols].copy()

    return i420_to_rgb(plane(0, stride_y, h, w), plane(1, stride_uv, h // 2, w // 2), plane(2, stride_uv, h // 2, w // 2))
