"""Which sources a stream may open, so that the service is safe on a LAN (docs/home.md): cameras
(/dev/videoN), network URLs, and files under STREAM_MEDIA_DIR only (unset: no file at all).

A file's path is resolved, symbolic links included, inside that folder (a relative path is taken from
it), and the reader is given the resolved absolute path: a link that leads out of the folder is refused,
and FFmpeg never reads a "protocol:" prefix (concat:, subfile:) into a path that starts with "/".
"""

import os
import re

from werkzeug.exceptions import Forbidden

CAMERA = re.compile(r"/dev/video[0-9]{1,3}")
SETTING = "STREAM_MEDIA_DIR"


def allowed_source(source: str, media_dir: str | None) -> str:
    """The source to open: a camera or a URL as given, a file as its resolved path; Forbidden (403,
    naming the setting) for file:// URLs and for any file outside `media_dir`."""
    if CAMERA.fullmatch(source):
        return source
    if "://" in source:
        if source.split("://", 1)[0].strip().lower() == "file":
            raise Forbidden(f"file:// URLs are not opened: give the file's path, in the folder {SETTING} names")
        return source  # the reader refuses schemes it does not play (422)
    if not media_dir:
        raise Forbidden(f"files are played only from the folder {SETTING} names, and it is not set")
    root = os.path.realpath(media_dir)
    path = os.path.realpath(os.path.join(root, source))
    if os.path.commonpath([root, path]) != root:
        raise Forbidden(f"{source} is not in the folder {SETTING} names (symbolic links out of it count as out)")
    return path
