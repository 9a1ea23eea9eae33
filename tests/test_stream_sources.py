"""Stream sources on a LAN (stream_service/sources.py): files only from STREAM_MEDIA_DIR, no file://, no
symbolic link out of the folder; through the stream app's HTTP edge (a refused source starts nothing)."""

import shutil

import pytest

from stream_service import create_app
from tests.support.faces import CLIP


@pytest.fixture
def media(tmp_path):
    """A media folder holding the clip, a link to it, and a link out to a file beside the folder."""
    folder = tmp_path / "media"
    (folder / "garden").mkdir(parents=True)
    shutil.copy(CLIP, folder / "garden" / "clip.mp4")
    (folder / "same.mp4").symlink_to(folder / "garden" / "clip.mp4")
    secret = tmp_path / "secret.mp4"
    shutil.copy(CLIP, secret)
    (folder / "out.mp4").symlink_to(secret)
    (folder / "out-dir").symlink_to(tmp_path)
    return folder


def client_for(media_dir):
    app = create_app({"TESTING": True, "STREAM_MEDIA_DIR": media_dir and str(media_dir), "STREAM_WORKERS": 1})
    return app, app.test_client()


def assert_forbidden(client, source):
    response = client.post("/streams", json={"source": source})
    assert response.status_code == 403, (source, response.json)
    assert response.json["success"] is False and "STREAM_MEDIA_DIR" in response.json["message"]


def test_files_outside_the_media_folder_are_refused(media, tmp_path):
    app, client = client_for(media)
    try:
        for source in (
            str(CLIP),  # a real video, elsewhere
            str(tmp_path / "secret.mp4"),
            "../secret.mp4",
            "garden/../../secret.mp4",
            "out.mp4",  # a link out
            "out-dir/secret.mp4",  # through a linked folder
            f"file://{media}/garden/clip.mp4",
            "FILE://" + str(media / "garden" / "clip.mp4"),
            "/etc/passwd",
        ):
            assert_forbidden(client, source)
        assert client.get("/streams").json["streams"] == []
        assert app.extensions["streams"].health()["readers"] == []
    finally:
        app.extensions["streams"].close()


def test_without_a_media_folder_no_file_plays(media):
    app, client = client_for(None)
    try:
        for source in (str(media / "garden" / "clip.mp4"), "clip.mp4"):
            assert_forbidden(client, source)
    finally:
        app.extensions["streams"].close()


def test_files_in_the_media_folder_play(media):
    app, client = client_for(media)
    try:
        for source in ("garden/clip.mp4", str(media / "same.mp4")):
            started = client.post("/streams", json={"source": source})
            assert started.status_code == 201, started.json
            assert started.json["source"] == str(media / "garden" / "clip.mp4")  # resolved, links included
            assert client.delete(f"/streams/{started.json['id']}").status_code == 200
        # A URL is no file: refused, when at all, for what it is (422). An FFmpeg protocol prefix without
        # "://" is a file name in the folder, given to FFmpeg as an absolute path: no such file.
        assert client.post("/streams", json={"source": "ftp://example.invalid/v.mp4"}).status_code == 422
        assert client.post("/streams", json={"source": "concat:/etc/passwd"}).status_code == 422
    finally:
        app.extensions["streams"].close()
