"""course_lib.datasets: named datasets fetched by URL, checked by sha256, cached, with an offline folder.

The downloads here come from a throw-away HTTP server on 127.0.0.1, so the real pooch code path
(download, hash check, cache) runs without the internet.
"""

import functools
import hashlib
import http.server
import threading

import pytest

from course_lib import datasets

CONTENT = b"To be, or not to be, that is the question.\n"


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www over HTTP on loopback; yields (base_url, request_log)."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "play.txt").write_bytes(CONTENT)
    requests_seen = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests_seen.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=root))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", requests_seen
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def play(monkeypatch, tmp_path, server):
    """Register a small dataset 'play' served by the local server; cache in tmp_path/cache."""
    base_url, _ = server
    dataset = datasets.Dataset(
        name="play",
        filename="play.txt",
        url=f"{base_url}/play.txt",
        sha256=hashlib.sha256(CONTENT).hexdigest(),
        description="one line of Hamlet",
    )
    monkeypatch.setitem(datasets.DATASETS, "play", dataset)
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(datasets.OFFLINE_ENV, raising=False)
    return dataset


def test_downloads_once_then_reads_the_cache(play, server, tmp_path):
    _, requests_seen = server
    assert datasets.load_text("play") == CONTENT.decode()
    assert datasets.fetch("play") == tmp_path / "cache" / "play.txt"
    assert datasets.load_text("play") == CONTENT.decode()
    assert requests_seen == ["/play.txt"]  # the second and third reads hit the cache


def test_download_with_the_wrong_checksum_is_rejected(play, monkeypatch, tmp_path):
    monkeypatch.setitem(datasets.DATASETS, "play", datasets.Dataset(**{**play.__dict__, "sha256": "0" * 64}))
    with pytest.raises(ValueError, match="(?i)hash"):
        datasets.fetch("play")
    assert not (tmp_path / "cache" / "play.txt").exists()


def test_offline_folder_is_used_first_and_verified(play, monkeypatch, tmp_path, server):
    _, requests_seen = server
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "play.txt").write_bytes(CONTENT)
    monkeypatch.setenv(datasets.OFFLINE_ENV, str(offline))
    assert datasets.fetch("play") == offline / "play.txt"
    assert requests_seen == []

    (offline / "play.txt").write_bytes(b"a corrupted copy")
    with pytest.raises(ValueError, match="sha256"):
        datasets.fetch("play")


def test_offline_and_not_cached_names_file_url_and_variable(play, monkeypatch):
    unreachable = "http://127.0.0.1:9/play.txt"  # port 9 (discard) refuses connections
    monkeypatch.setitem(datasets.DATASETS, "play", datasets.Dataset(**{**play.__dict__, "url": unreachable}))
    with pytest.raises(datasets.DatasetUnavailableError) as info:
        datasets.fetch("play")
    message = str(info.value)
    assert "play.txt" in message
    assert unreachable in message
    assert datasets.OFFLINE_ENV in message


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(KeyError, match="tinyshakespeare"):
        datasets.fetch("wikipedia")


def test_tiny_shakespeare_is_registered_with_its_published_checksum():
    dataset = datasets.DATASETS["tinyshakespeare"]
    assert dataset.sha256 == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert dataset.url.endswith("tinyshakespeare/input.txt")
    text = datasets.load_text("tinyshakespeare")  # offline folder or cache in CI; downloads elsewhere
    assert len(text) == 1_115_394
    assert text.startswith("First Citizen:")
