"""The stream service as its tests drive it: the clip's frames, streams started and stopped, their
Motion JPEG part by part, calls as GET /streams lists them, and what a call's page shows."""

import base64
import itertools

import cv2
import numpy as np
import requests

from tests.support.faces import CLIP
from tests.support.waiting import WAIT

# One shot of the clip, a face in every frame: what chromium's fake camera plays in call tests.
CAMERA_SHOT = (120, 209)


def read_clip(first=0, last=None):
    """The clip's frames first..last (all by default), in order (BGR)."""
    capture = cv2.VideoCapture(str(CLIP))
    capture.set(cv2.CAP_PROP_POS_FRAMES, first)
    frames = []
    while last is None or first + len(frames) <= last:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    return frames


def write_y4m(frames, path):
    """The frames as a .y4m file at 30 fps, for chromium's --use-file-for-fake-video-capture."""
    height, width = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


def start(service, **body):
    response = requests.post(f"{service.url}/streams", json={"source": str(CLIP), **body}, timeout=WAIT)
    assert response.status_code == 201, response.text
    return response.json()


def stop(service, stream):
    assert requests.delete(f"{service.url}/streams/{stream['id']}", timeout=10).status_code == 200


def state(service, stream):
    return requests.get(f"{service.url}/streams/{stream['id']}", timeout=10).json()


def calls(service):
    return [s for s in requests.get(f"{service.url}/streams", timeout=10).json()["streams"] if s["source"] == "webrtc"]


def parts(service, stream, count):
    """The first `count` parts of the stream's MJPEG: [(frame seq, decoded JPEG)]."""
    return list(itertools.islice(video(service, stream), count))


def video(service, stream):
    """The stream's MJPEG, part by part: (frame seq, decoded JPEG)."""
    with requests.get(f"{service.url}/streams/{stream['id']}/mjpeg", stream=True, timeout=WAIT) as response:
        assert response.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
        buffer = b""
        for chunk in response.iter_content(65536):
            buffer += chunk
            while (end := buffer.find(b"\r\n\r\n")) >= 0:
                lines = buffer[:end].decode().split("\r\n")
                assert lines[0] == "--frame"
                headers = dict(line.split(": ", 1) for line in lines[1:])
                length = int(headers["Content-Length"])
                if len(buffer) < end + 4 + length + 2:
                    break
                jpeg = buffer[end + 4 : end + 4 + length]
                assert jpeg[:2] == b"\xff\xd8" and buffer[end + 4 + length : end + 6 + length] == b"\r\n"
                yield int(headers["X-Frame-Seq"]), cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                buffer = buffer[end + 6 + length :]


GRAB = """() => {
  const video = document.querySelector('#call-video');
  if (!video.videoWidth) return null;
  const canvas = Object.assign(document.createElement('canvas'), {width: video.videoWidth, height: video.videoHeight});
  canvas.getContext('2d').drawImage(video, 0, 0);
  return canvas.toDataURL('image/png');
}"""


def grab(page):
    """The frame the page shows now of the video the service sent back (BGR)."""
    url = page.evaluate(GRAB)
    return cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


def tiny(image):
    """A 64x36 grey thumbnail, to tell which frame of the clip a picture shows."""
    return cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (64, 36), interpolation=cv2.INTER_AREA).astype(float)


# What the watch page (/watch/<id>) shows once it plays: how (over WHEP or as MJPEG) and at what width.
SHOWN = """() => {
  const video = document.querySelector('#watch-video'), img = document.querySelector('#watch-mjpeg');
  if (!video.hidden && video.videoWidth > 0) return {how: 'webrtc', width: video.videoWidth};
  if (!img.hidden && img.naturalWidth > 0) return {how: 'mjpeg', width: img.naturalWidth};
  return null;
}"""
