"""The pictures a background filter can put behind the person: uploaded once (PUT /backgrounds/<name>),
kept as PNG files in DATA_DIR/backgrounds, and named by a stream's "background"; or a colour, "#rrggbb".

An upload is decoded as the detect service decodes photos (facerec/vision/images.py: the header first,
so a decompression bomb is refused before its pixels are), turned upright and shrunk to fit 1920x1080:
a background is never shown larger than the frame, and a stream's process keeps one per frame size.
"""

import os
import re
import tempfile
from pathlib import Path

import cv2

from facerec.vision.images import decode_image

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
FIT = (1920, 1080)


class UnknownBackground(LookupError):
    pass


class TooManyBackgrounds(RuntimeError):
    pass


class BadBackground(ValueError):
    pass


class Backgrounds:
    """The stored pictures, in `folder`; at most `kept` of them."""

    def __init__(self, folder: Path, kept: int):
        self.folder, self.kept = Path(folder), kept

    def save(self, name: str, data: bytes) -> dict:
        """Store (or replace) picture `name`; returns its summary. Refuses what is not an image (ImageError)."""
        self._check_name(name)
        if not self._path(name).exists() and len(self.names()) >= self.kept:
            raise TooManyBackgrounds(f"{self.kept} backgrounds are stored (STREAM_BACKGROUNDS_KEPT): delete one first")
        rgb = decode_image(data).pixels
        height, width = rgb.shape[:2]
        scale = min(1.0, FIT[0] / width, FIT[1] / height)
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        self.folder.mkdir(parents=True, exist_ok=True)
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        # Written whole, then renamed: a stream that reads it meanwhile gets the old picture or the new.
        with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".tmp", delete=False) as out:
            out.write(png.tobytes())
        os.replace(out.name, self._path(name))
        return {"name": name, "width": rgb.shape[1], "height": rgb.shape[0]}

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.png"))

    def delete(self, name: str) -> None:
        self._check_name(name)
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            raise UnknownBackground(f"no background named {name}") from None

    def resolve(self, background: str | None) -> tuple | None:
        """What a stream's process puts behind the person: ("colour", (b, g, r)), ("image", path) or None."""
        if background is None:
            return None
        if not isinstance(background, str):
            raise BadBackground('background is a colour "#rrggbb" or the name of a picture PUT to /backgrounds')
        if COLOUR.fullmatch(background):
            r, g, b = (int(background[i : i + 2], 16) for i in (1, 3, 5))
            return ("colour", (b, g, r))
        self._check_name(background)
        path = self._path(background)
        if not path.is_file():
            raise UnknownBackground(f"no background named {background}: PUT /backgrounds/{background} first")
        return ("image", str(path))

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.png"

    @staticmethod
    def _check_name(name: str) -> None:
        if not NAME.fullmatch(name):
            raise BadBackground(
                'background is a colour "#rrggbb" or a name of 1-64 letters, digits, "-" and "_", not starting with "-" or "_"'
            )
