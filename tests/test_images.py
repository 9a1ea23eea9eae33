"""The decode policy, box scaling and EXIF orientation, without HTTP or dlib."""

import io
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from facerec.vision.boxes import Box
from facerec.vision.images import (
    HOG_WINDOW_PX,
    ImageError,
    ImageTooLarge,
    UnsupportedImage,
    box_to_stored,
    decode_image,
    jpeg_reduction,
    upright,
    working_scale,
)
from tests.support.faces import photo, with_orientation

ORIENTATIONS = range(1, 9)


@pytest.mark.parametrize("min_face_px, reduction", [(100, 2), (40, 1), (64, 1), (160, 2), (200, 4), (320, 4), (700, 8)])
def test_the_detection_image_finds_every_face_of_the_minimum_size(min_face_px, reduction):
    scale = working_scale(min_face_px, 1920, 1080)
    assert HOG_WINDOW_PX / scale <= min_face_px
    assert jpeg_reduction(scale) == reduction and (reduction == 1 or reduction * scale <= 1.6)  # enlarged ≤ 1.6×


def test_a_huge_photo_is_scanned_within_the_working_pixel_limit():
    scale = working_scale(100, 12_000, 8_000)  # 96 MP
    assert (12_000 * scale) * (8_000 * scale) == pytest.approx(12_000_000)


def test_the_working_image_is_never_smaller_than_the_scale_asks():
    data = photo("fr_examples/obama/obama-1080p.jpg")
    p = decode_image(data, 100)  # reduced 2×, then enlarged 1.6× to 0.8 of full size
    assert p.pixels.shape == (864, 1536, 3)
    assert HOG_WINDOW_PX * p.scale[0] >= 100 and HOG_WINDOW_PX * p.scale[1] >= 100


def test_reduced_decode_reports_full_resolution_and_its_scale():
    data = photo("fr_examples/obama/obama-1080p.jpg")
    full, half = decode_image(data), decode_image(data, 160)  # 160 px: a ½ decode, no resize
    assert (full.width, full.height) == (half.width, half.height) == (1920, 1080)
    assert full.pixels.shape == (1080, 1920, 3) and half.pixels.shape == (540, 960, 3)
    assert half.scale == (2.0, 2.0)
    assert half.pixels.flags.c_contiguous and half.pixels.dtype == np.uint8


def test_png_is_shrunk_after_decoding():
    p = decode_image(photo("face_recognition_test_images/32bit.png"), 320)
    assert (p.width, p.height) == (626, 1200)
    assert p.pixels.shape == (300, 156, 3)  # 4× smaller, rounded down, alpha dropped


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_pixels_are_turned_as_pillow_turns_them(orientation):
    stored = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    assert np.array_equal(upright(stored, orientation), expected)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_box_maps_back_to_the_stored_pixels(orientation):
    # Mark a 3×2 block in the stored image, turn it upright, find the block, map its box back.
    stored = np.zeros((40, 60), np.uint8)
    stored[10:12, 20:23] = 1
    turned = upright(stored, orientation)
    ys, xs = np.nonzero(turned)
    box = Box(int(xs.min()), int(ys.min()), int(xs.max() + 1 - xs.min()), int(ys.max() + 1 - ys.min()))
    height, width = turned.shape
    assert box_to_stored(box, orientation, width, height) == Box(20, 10, 3, 2)


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_orientation_is_applied_on_decode(orientation):
    original = decode_image(photo("face_recognition_test_images/obama.jpg"))
    turned = decode_image(with_orientation(photo("face_recognition_test_images/obama.jpg"), orientation))
    assert turned.orientation == orientation
    assert (turned.width, turned.height) == (original.width, original.height) == (910, 1137)
    # Re-encoded at quality 95: the same picture up to JPEG noise.
    assert np.abs(turned.pixels.astype(int) - original.pixels).mean() < 3


def test_missing_orientation_reads_as_1():
    assert decode_image(photo("face_recognition_test_images/obama.jpg")).orientation == 1


@pytest.mark.parametrize(
    "data, error",
    [
        (b"", UnsupportedImage),
        (b"hello, this is text", UnsupportedImage),
        (b"<html><body>not a photo</body></html>", UnsupportedImage),
    ],
)
def test_non_images_are_refused(data, error):
    with pytest.raises(error):
        decode_image(data)


def test_truncated_jpeg_is_refused():
    data = photo("face_recognition_test_images/obama.jpg")
    with pytest.raises(ImageError, match="truncated"):
        decode_image(data[: len(data) // 2])


def test_truncated_png_is_refused():
    data = photo("face_recognition_test_images/32bit.png")
    with pytest.raises(ImageError):
        decode_image(data[: len(data) // 2])


def png_of_size(width, height):
    """A tiny PNG whose header claims width×height: a decompression bomb's shape."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "PNG")
    data = bytearray(out.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(data[12:29]).to_bytes(4, "big")  # the IHDR chunk's CRC
    return bytes(data)


def test_too_many_pixels_are_refused_before_decoding():
    with pytest.raises(ImageTooLarge, match="30000×30000"):
        decode_image(png_of_size(30_000, 30_000))


def test_a_configured_pixel_limit_applies():
    with pytest.raises(ImageTooLarge):
        decode_image(photo("face_recognition_test_images/obama.jpg"), max_pixels=1_000_000)
