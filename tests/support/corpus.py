"""Hostile and unusual uploads, generated from the real photos: every format photo libraries hold, and
the damaged, lying and malicious files an upload endpoint meets. Built in memory, seeded, cached."""

import functools
import io
import random
import struct
import zlib

import numpy as np
from PIL import Image

from tests.support.faces import photo, with_orientation

OBAMA = "face_recognition_test_images/obama.jpg"  # 910×1137, one face
PNG_PHOTO = "face_recognition_test_images/32bit.png"


@functools.lru_cache(None)
def face_image():
    """The Obama photo at half size (455×568, the face about 130 px): small enough to detect fast."""
    with Image.open(io.BytesIO(photo(OBAMA))) as image:
        return image.convert("RGB").resize((455, 568), Image.Resampling.LANCZOS)


def encode(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def sixteen_bit_png(image):
    """A 16-bit RGB PNG (Pillow writes only 16-bit grey, so build it with zlib): each 8-bit value v is
    stored as v·257, so a correct 8-bit decode gives v back."""
    wide = np.asarray(image).astype(">u2") * 257
    rows = b"".join(b"\0" + row.tobytes() for row in wide)
    height, width = wide.shape[:2]
    return png_of(width, height, bit_depth=16, colour_type=2, idat=zlib.compress(rows, 6))


def sixteen_bit_tiff(image, orientation=1):
    wide = (np.asarray(image).astype(np.uint16) * 257).astype("<u2")
    return tiff_of(wide, orientation)


def tiff_of(pixels, orientation=1):
    """An uncompressed little-endian RGB TIFF of `pixels` (H×W×3, uint8 or uint16), built by hand."""
    height, width = pixels.shape[:2]
    bits = pixels.dtype.itemsize * 8
    body = pixels.tobytes()
    entries = [  # tag, type (3 SHORT, 4 LONG), count, value
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 3, None),
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, None),
        (274, 3, 1, orientation),
        (277, 3, 1, 3),
        (278, 4, 1, height),
        (279, 4, 1, len(body)),
    ]
    ifd_at = 8
    extra_at = ifd_at + 2 + 12 * len(entries) + 4
    pixels_at = extra_at + 6
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if tag == 258:
            ifd += struct.pack("<HHII", tag, kind, count, extra_at)
        elif tag == 273:
            ifd += struct.pack("<HHII", tag, kind, count, pixels_at)
        elif kind == 3:
            ifd += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, kind, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_at) + ifd + struct.pack("<3H", bits, bits, bits) + body


def _chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def with_chunk(png, kind, payload):
    """The PNG with one more chunk right after its header (IHDR)."""
    return png[:33] + _chunk(kind, payload) + png[33:]


def png_of(width, height, bit_depth=8, colour_type=0, idat=b""):
    """A PNG with the given header and compressed data, CRCs right."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@functools.lru_cache(None)
def png_bomb(side=20_000):
    """A real decompression bomb: side×side grey zero pixels, a few hundred KB compressed."""
    squeeze = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte, then the row
    idat = b"".join(squeeze.compress(row) for _ in range(side)) + squeeze.flush()
    return png_of(side, side, idat=idat)


def jpeg_with_size(data, width, height):
    """The JPEG with its frame header (SOF0/SOF2) claiming another size."""
    out = bytearray(data)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = out.find(marker)
        if at > 0:
            out[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(out)


def gif_with_size(data, width, height):
    out = bytearray(data)
    out[6:10] = struct.pack("<HH", width, height)  # the logical screen
    return bytes(out)


def bmp_with_size(data, width, height):
    out = bytearray(data)
    out[18:26] = struct.pack("<ii", width, height)
    return bytes(out)


def heic_with_size(data, width, height):
    out = bytearray(data)
    at = out.find(b"ispe")
    out[at + 8 : at + 16] = struct.pack(">II", width, height)
    return bytes(out)


def with_exif(data, exif_bytes):
    """The JPEG with an APP1 EXIF segment holding `exif_bytes` (a TIFF structure) after its SOI."""
    payload = b"Exif\0\0" + exif_bytes
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def exif_orientation_block(value, kind=3, pad=0):
    """A little-endian EXIF TIFF block with one Orientation entry of `kind`, and `pad` bytes after."""
    if kind == 3:
        entry = struct.pack("<HHIHH", 0x0112, 3, 1, value, 0)
    else:  # an ASCII or LONG tag where a SHORT belongs
        entry = struct.pack("<HHII", 0x0112, kind, 1, value)
    return b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 1) + entry + struct.pack("<I", 0) + b"\0" * pad


def truncations(data, count):
    """`data` cut off at `count` points spread over it (never whole)."""
    return [data[: len(data) * k // (count + 1)] for k in range(1, count + 1)]


def bit_flips(data, count, seed, flips=8):
    """`count` copies of `data`, each with `flips` random bits flipped (past the first two bytes)."""
    rng = random.Random(seed)
    copies = []
    for _ in range(count):
        out = bytearray(data)
        for _ in range(flips):
            at = rng.randrange(2, len(out))
            out[at] ^= 1 << rng.randrange(8)
        copies.append(bytes(out))
    return copies


@functools.lru_cache(None)
def good_formats():
    """name → (bytes, the upright RGB pixels a correct decode gives, tolerance in mean abs difference)."""
    image = face_image()
    rgb = np.asarray(image)
    frames = [image, image.rotate(90), image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    grey = image.convert("L")
    return {
        "jpeg": (encode(image, "JPEG", quality=95), rgb, 3),
        "jpeg-cmyk": (encode(image.convert("CMYK"), "JPEG", quality=95), rgb, 4),
        "jpeg-grey": (encode(grey, "JPEG", quality=95), np.asarray(grey.convert("RGB")), 3),
        "jpeg-progressive": (encode(image, "JPEG", quality=95, progressive=True), rgb, 3),
        # What many cameras write (Pillow names it MPO): a JPEG followed by more pictures.
        "jpeg-mpo": (encode(image, "MPO", quality=95, save_all=True, append_images=[image.resize((160, 200))]), rgb, 3),
        "png": (encode(image, "PNG"), rgb, 0),
        "png-rgba": (encode(image.convert("RGBA"), "PNG"), rgb, 0),
        "png-palette": (encode(image.quantize(256), "PNG"), np.asarray(image.quantize(256).convert("RGB")), 0),
        "png-16bit": (sixteen_bit_png(image), rgb, 0),
        "png-16bit-grey": (
            encode(Image.fromarray(np.asarray(grey).astype(np.uint16) * 257), "PNG"),
            np.asarray(grey.convert("RGB")),
            0,
        ),
        "webp": (encode(image, "WEBP", quality=95), rgb, 4),
        "webp-lossless": (encode(image, "WEBP", lossless=True), rgb, 0),
        "webp-animated": (encode(frames[0], "WEBP", lossless=True, save_all=True, append_images=frames[1:]), rgb, 0),
        "tiff": (encode(image, "TIFF"), rgb, 0),
        "tiff-lzw": (encode(image, "TIFF", compression="tiff_lzw"), rgb, 0),
        "tiff-cmyk": (encode(image.convert("CMYK"), "TIFF"), np.asarray(image.convert("CMYK").convert("RGB")), 1),
        "tiff-16bit": (sixteen_bit_tiff(image), rgb, 0),
        "bmp": (encode(image, "BMP"), rgb, 0),
        "gif": (encode(image, "GIF"), np.asarray(image.quantize(256).convert("RGB")), 8),
        "gif-animated": (
            encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
            np.asarray(image.quantize(256).convert("RGB")),
            8,
        ),
        "heic": (encode(image, "HEIF", quality=95), rgb, 4),
    }


@functools.lru_cache(None)
def oriented():
    """orientation → a JPEG stored turned, with the EXIF orientation that stands it upright."""
    data = encode(face_image(), "JPEG", quality=95)
    return {o: with_orientation(data, o) for o in range(1, 9)}


UNDO = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def oriented_as(fmt, orientation):
    """The face photo stored turned in `fmt`, with the EXIF orientation that stands it upright."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(face_image().transpose(UNDO[orientation]), fmt, exif=exif)


@functools.lru_cache(None)
def hostile():
    """name → (bytes, the 4xx statuses it may get; () when it must decode). Every entry is one bad or odd input."""
    jpeg = encode(face_image(), "JPEG", quality=90)
    png = encode(face_image().resize((227, 284)), "PNG")
    formats = good_formats()
    rng = random.Random(7)
    corpus = {
        "empty": (b"", (400, 415)),
        "text": (b"hello, this is text\n" * 20, (415,)),
        "html": (b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>", (415,)),
        "json": (b'{"image": "obama.jpg"}', (415,)),
        "random-bytes": (rng.randbytes(4096), (415,)),
        "jpeg-magic-only": (b"\xff\xd8\xff\xe0", (415, 422)),
        "png-magic-only": (b"\x89PNG\r\n\x1a\n", (415, 422)),
        "png-bomb-20000": (png_bomb(), (413,)),
        "png-header-30000": (png_of(30_000, 30_000), (413,)),
        "png-zero-size": (png_of(0, 0), (413, 415, 422)),
        "png-bad-idat": (png_of(300, 300, idat=rng.randbytes(2000)), (422,)),
        "png-short-idat": (png_of(3000, 3000, idat=zlib.compress(b"\0" * 3001 * 10)), (422,)),
        "jpeg-header-30000": (jpeg_with_size(jpeg, 30_000, 30_000), (413,)),
        # Its scan ends before the claimed size is filled: libjpeg pads with grey and only warns, like
        # a truncated file that still ends with FF D9. The picture that is there is decoded (a 2xx).
        "jpeg-header-larger": (jpeg_with_size(jpeg, 2000, 2000), (422, None)),
        "gif-header-65535": (gif_with_size(formats["gif"][0], 65_535, 65_535), (413,)),
        "bmp-header-30000": (bmp_with_size(formats["bmp"][0], 30_000, 30_000), (413, 415, 422)),
        "heic-header-30000": (heic_with_size(formats["heic"][0], 30_000, 30_000), (413, 415, 422)),
        "jpeg-exif-60kb": (with_exif(jpeg, exif_orientation_block(6, pad=60_000)), ()),
        "jpeg-exif-garbage": (with_exif(jpeg, rng.randbytes(30_000)), ()),
        "png-text-bomb": (with_chunk(png, b"zTXt", b"Comment\0\0" + zlib.compress(b"a" * 50_000_000, 9)), (422,)),
        "png-icc-bomb": (with_chunk(png, b"iCCP", b"icc\0\0" + zlib.compress(b"\0" * 50_000_000, 9)), (422,)),
        "tiff-truncated": (formats["tiff"][0][:5000], (422,)),
        "heic-truncated": (formats["heic"][0][:2000], (415, 422)),
        "webp-truncated": (formats["webp"][0][:3000], (415, 422)),
        "gif-truncated": (formats["gif"][0][:3000], (415, 422)),
        "ico": (encode(face_image(), "ICO"), (415,)),
        "tga": (encode(face_image(), "TGA"), (415,)),
        "ppm": (encode(face_image(), "PPM"), (415,)),
        "pdf": (encode(face_image(), "PDF"), (415,)),
    }
    for value in (0, 9, 255, 65535):
        corpus[f"jpeg-exif-orientation-{value}"] = (with_exif(jpeg, exif_orientation_block(value)), ())
    corpus["jpeg-exif-orientation-as-long"] = (with_exif(jpeg, exif_orientation_block(6, kind=4)), ())
    corpus["jpeg-exif-orientation-as-ascii"] = (with_exif(jpeg, exif_orientation_block(0x36, kind=2)), ())
    for i, cut in enumerate(truncations(jpeg, 10)):
        corpus[f"jpeg-truncated-{i}"] = (cut, (415, 422))
    for i, cut in enumerate(truncations(png, 10)):
        corpus[f"png-truncated-{i}"] = (cut, (415, 422))
    # A flipped bit may land in pixels only (a 2xx with a damaged picture) or in structure (a 4xx).
    for i, flipped in enumerate(bit_flips(jpeg, 30, seed=1)):
        corpus[f"jpeg-bitflip-{i}"] = (flipped, (413, 415, 422, None))
    for i, flipped in enumerate(bit_flips(png, 30, seed=2)):
        corpus[f"png-bitflip-{i}"] = (flipped, (413, 415, 422, None))
    return corpus
