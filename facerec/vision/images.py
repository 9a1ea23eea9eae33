"""Turning uploaded bytes into upright RGB pixels, and mapping boxes between coordinate systems.

Three coordinate systems meet here:
- *stored*: the pixels as they lie in the file (what jAlbum crops thumbnails from);
- *upright*: stored pixels turned by the EXIF orientation (what a person sees; /detect answers in these);
- *working*: the upright image as decoded, possibly reduced 2, 4 or 8 times (what dlib looks at).
"""

import hashlib
import io
import os
from dataclasses import dataclass, replace

import numpy as np
import pillow_heif
from PIL import Image, UnidentifiedImageError

from .boxes import Box

# The most pixels a photo may have unless the caller says otherwise (the detect service passes its
# MAX_IMAGE_PIXELS setting, whose default this is).
MAX_IMAGE_PIXELS = 64_000_000
# OpenCV reads its pixel ceiling once, at import: a second guard behind the header check below. The
# detect service sets it from its setting before this module is imported (detect_service/gunicorn.conf.py).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
import cv2  # noqa: E402

# Pixel counts are checked against MAX_IMAGE_PIXELS in decode_image, with a clearer message.
Image.MAX_IMAGE_PIXELS = None
# HEIC/HEIF (iPhones' default): Pillow reads its header like any other format's and decodes it,
# since OpenCV has no HEIC decoder. libheif applies the container's rotation and mirroring itself
# and pillow-heif then resets the EXIF orientation to 1, so HEIC pixels come out upright.
pillow_heif.register_heif_opener()

# Pillow's format names that we decode, and how a message names them. Pillow calls a camera's
# multi-picture JPEG "MPO"; its first picture is an ordinary JPEG, which is what OpenCV decodes.
FORMATS = {
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "PNG": "PNG",
    "WEBP": "WebP",
    "TIFF": "TIFF",
    "BMP": "BMP",
    "GIF": "GIF",
    "HEIF": "HEIC",
}
SUPPORTED = "JPEG, PNG, WebP, TIFF, BMP, GIF, HEIC/HEIF"

# dlib's frontal HOG detector scans an 80×80 window (and 5/6 steps of an image pyramid above it), so
# it finds faces of 80 working pixels or more: a photo scaled by 80 / MIN_FACE_PX for detection yields
# every face of MIN_FACE_PX or more, and HOG's cost falls with the square of that scale.
HOG_WINDOW_PX = 80
# A JPEG decodes reduced 2, 4 or 8 times (libjpeg skips most of the work) and is then resized to the
# working scale. Reducing down to 1/1.6 of that scale and enlarging back costs about half the time
# and a quarter of the memory of a full decode at 12 MP, and HOG finds the same faces on it (the
# recall column of `make bench`); enlarging more starts to blur faces of the smallest size.
MAX_ENLARGE = 1.6
# The detection image never exceeds this many pixels: HOG needs about 11 bytes per working pixel (the
# RGB image and its feature pyramid), so 12 MP keeps a worker near 270 MB on any photo (`make bench`
# measures a 36 MP JPEG; 16 MP reached 312 MB). Photos up to 18 MP are scanned for faces of 100 px;
# a larger one is scaled down further (24 MP: faces from 113 px, 36 MP: 139 px), rather than a
# worker running out of memory.
MAX_WORKING_PIXELS = 12_000_000
# Small photos are searched for smaller faces where HOG's whole scan stays cheap: a photo of at most
# SMALL_PHOTO_PIXELS is scanned at up to CHEAP_SCAN_PIXELS (a 640×480 photo at twice its size), which
# lowers its floor from MIN_FACE_PX towards SMALL_FACE_PX (docs/detection.md: the rule and its recall).
SMALL_PHOTO_PIXELS = 1_000_000
CHEAP_SCAN_PIXELS = 1_250_000
REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
EXIF_ORIENTATION = 0x0112


class ImageError(ValueError):
    """The upload is not an image we can read."""


class UnsupportedImage(ImageError):
    """Not an image, or a format we do not decode."""


class ImageTooLarge(ImageError):
    """More pixels than MAX_IMAGE_PIXELS, or zero."""


@dataclass
class Photo:
    pixels: np.ndarray  # upright, RGB, working resolution, C-contiguous (dlib needs that)
    width: int  # upright, full resolution
    height: int
    orientation: int  # EXIF value 1..8, 1 when absent
    sha256: str  # of the uploaded bytes
    min_face_px: float = 0  # the smallest face looked for in this photo (face_floor); 0: every face

    @property
    def scale(self):
        """Full-resolution pixels per working pixel, on each axis."""
        return self.width / self.pixels.shape[1], self.height / self.pixels.shape[0]

    def summary(self):
        return {"width": self.width, "height": self.height, "orientation": self.orientation, "sha256": self.sha256}


def working_scale(min_face_px, width, height):
    """How much smaller than the photo the image HOG scans is, so that it finds every face of
    `min_face_px` or more, within MAX_WORKING_PIXELS."""
    return min(HOG_WINDOW_PX / min_face_px, (MAX_WORKING_PIXELS / (width * height)) ** 0.5)


def face_floor(min_face_px, small_face_px, width, height):
    """The smallest face looked for in a photo of this size: `min_face_px`, or on a small photo less, down
    to `small_face_px`, as far as a whole scan of CHEAP_SCAN_PIXELS allows."""
    pixels = width * height
    if pixels > SMALL_PHOTO_PIXELS or not small_face_px:
        return min_face_px
    return min(min_face_px, max(small_face_px, HOG_WINDOW_PX * (pixels / CHEAP_SCAN_PIXELS) ** 0.5))


def cheap_to_scan(photo):
    """Whether HOG's whole scan of this small photo, for its faces of photo.min_face_px, stays within
    CHEAP_SCAN_PIXELS."""
    scale = working_scale(photo.min_face_px, photo.width, photo.height)
    pixels = photo.width * photo.height
    return pixels <= SMALL_PHOTO_PIXELS and pixels * scale**2 <= CHEAP_SCAN_PIXELS * 1.001


def jpeg_reduction(scale):
    """The most reduced JPEG decode (1, 2, 4 or 8) that is at most MAX_ENLARGE from `scale`."""
    reduction = 1
    while reduction < 8 and 2 * reduction * scale <= MAX_ENLARGE:
        reduction *= 2
    return reduction


def decode_image(
    data: bytes,
    min_face_px: float | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    small_face_px: float | None = None,
    exact: bool = True,
) -> Photo:
    """Decode uploaded bytes into an upright RGB Photo at the working scale for its faces of
    `min_face_px` or more (None: full resolution; `small_face_px`: the floor of a small photo, see
    face_floor). With `exact` False, a JPEG stays as libjpeg's reduced decode gave it (at most
    MAX_ENLARGE smaller than the working scale; at_working_scale resizes it when needed).

    The header is read first (Pillow reads no pixels for that), so a decompression bomb is refused
    before any memory is spent on it.
    """
    if not data:
        raise UnsupportedImage("the request carries no image")
    fmt, width, height, orientation = read_header(data, max_pixels)
    if fmt == "JPEG" and _jpeg_truncated(data):
        raise ImageError("truncated JPEG: the file ends before the image does")
    floor = face_floor(min_face_px, small_face_px, width, height) if min_face_px else 0
    scale = working_scale(floor, width, height) if floor else 1.0
    reduction = jpeg_reduction(scale) if fmt == "JPEG" else 1
    rgb = decode_with_pillow(data, fmt) if fmt == "HEIF" else decode_with_opencv(data, fmt, reduction)
    if rgb.shape[:2] != (_reduced(height, reduction), _reduced(width, reduction)):
        # Both readers sniff the format from the bytes; should they ever disagree on the size, the
        # pixel check above did not cover what was decoded, and the boxes would be mis-scaled.
        raise ImageError(f"could not decode this {FORMATS[fmt]} file: its pixels do not match its header")
    if exact or reduction == 1:  # a photo decoded whole is brought to the working scale at once
        rgb = _resized(rgb, width, height, scale)
    # libtiff turns a TIFF by its Orientation tag itself, in OpenCV whatever the flags and in Pillow,
    # whose size is then the upright one: turning it again would turn it twice.
    turn = 1 if fmt == "TIFF" else orientation
    rgb = np.ascontiguousarray(upright(rgb, turn))
    up_w, up_h = (height, width) if turn >= 5 else (width, height)
    return Photo(rgb, up_w, up_h, orientation, hashlib.sha256(data).hexdigest(), floor)


def at_working_scale(photo):
    """The photo with its pixels at the working scale for photo.min_face_px (decode_image with `exact`)."""
    scale = working_scale(photo.min_face_px, photo.width, photo.height) if photo.min_face_px else 1.0
    return replace(photo, pixels=np.ascontiguousarray(_resized(photo.pixels, photo.width, photo.height, scale)))


def _resized(rgb, width, height, scale):
    # Rounded down, so that a working pixel is never less than 1 / scale photo pixels and a face of
    # HOG_WINDOW_PX working pixels is at least min_face_px.
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    if size == (rgb.shape[1], rgb.shape[0]):
        return rgb
    shrink = size[0] < rgb.shape[1]
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def decode_with_opencv(data, fmt, reduction):
    """RGB uint8 pixels of the stored image (first frame, first page); JPEG reduced `reduction` times.

    IMREAD_COLOR turns every variant into 8-bit BGR: CMYK JPEG and TIFF, 16-bit PNG and TIFF
    (scaled down), grey, palette and alpha (dropped).
    """
    flags = (REDUCED_FLAGS[reduction] if fmt == "JPEG" else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        bgr = None
    if bgr is None:
        raise ImageError(f"could not decode this {FORMATS[fmt]} file: it is damaged or uses an unsupported variant")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)  # in place: a 36 MP photo is 108 MB


def decode_with_pillow(data, fmt):
    """RGB uint8 pixels of a format OpenCV cannot decode (HEIC), after the same header check."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError, RuntimeError, EOFError):
        raise ImageError(
            f"could not decode this {FORMATS[fmt]} file: it is damaged or uses an unsupported variant"
        ) from None


def _reduced(side, reduction):
    return -(-side // reduction)  # libjpeg's scaled decode rounds up


def read_header(data, max_pixels):
    """(format, stored width, stored height, EXIF orientation), refusing too many pixels before any
    are decoded."""
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnsupportedImage(f"not an image in a supported format ({SUPPORTED})") from None
    except (OSError, SyntaxError, ValueError) as e:
        # A reader recognised the format and then failed: a damaged header, or a text or colour-profile
        # chunk that decompresses past Pillow's limit (a bomb hidden in metadata). Pillow's reason is clear.
        raise ImageError(f"could not read this image's header: {e}") from None
    with image:
        if image.format not in FORMATS:
            raise UnsupportedImage(f"{image.format} images are not supported; send {SUPPORTED}")
        if not 0 < image.width * image.height <= max_pixels:
            raise ImageTooLarge(f"image is {image.width}×{image.height} pixels; the limit is {max_pixels:,} pixels")
        fmt = "JPEG" if image.format == "MPO" else image.format
        return fmt, image.width, image.height, _orientation(image)


def _orientation(image):
    # Pillow decodes a whole PNG to look for EXIF after its pixels: read only what precedes them.
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError):  # a broken EXIF block is no reason to refuse the photo
        return 1
    return orientation if orientation in range(1, 9) else 1


def _jpeg_truncated(data):
    # libjpeg pads a cut-off JPEG with grey and only warns. Entropy-coded data never holds FF D9
    # (0xFF is always stuffed), so a whole file has an end-of-image marker after its last scan.
    return data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")


# EXIF orientation → how the stored pixels are turned to stand upright.
# Each is an affine map of continuous coordinates (x, y) in a stored image of size (w, h).
_TO_UPRIGHT = {
    1: lambda x, y, w, h: (x, y),
    2: lambda x, y, w, h: (w - x, y),  # mirrored
    3: lambda x, y, w, h: (w - x, h - y),  # rotated 180°
    4: lambda x, y, w, h: (x, h - y),  # mirrored vertically
    5: lambda x, y, w, h: (y, x),  # transposed
    6: lambda x, y, w, h: (h - y, x),  # turned 90° clockwise to stand upright
    7: lambda x, y, w, h: (h - y, w - x),  # transversed
    8: lambda x, y, w, h: (y, w - x),  # turned 90° counter-clockwise to stand upright
}
# The same turns on a pixel array (rows = y, columns = x).
_TURN_PIXELS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def upright(pixels, orientation):
    """The stored pixel array turned as its EXIF orientation says (a view, no copy)."""
    return _TURN_PIXELS[orientation](pixels)


def box_to_stored(box: Box, orientation: int, upright_w: int, upright_h: int) -> Box:
    """Map an upright full-resolution box back into stored pixels."""
    # The inverse of each map above: find the stored corner that lands on each upright corner.
    inverse = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}[orientation]
    xs, ys = zip(
        *(
            _TO_UPRIGHT[inverse](x, y, upright_w, upright_h)
            for x in (box.left, box.right)
            for y in (box.top, box.bottom)
        )
    )
    left, top = min(xs), min(ys)
    return Box(left, top, max(xs) - left, max(ys) - top)
