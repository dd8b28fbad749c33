"""Files, hashes, downloads and caches (loop.datasets.sources)."""

import dataclasses
import functools
import http.server
import threading

import numpy as np
import pytest

from loop import datasets
from loop.datasets import sources

from helpers import music_csv_text, trust


class _Server:
    """A bounded local HTTP server that counts requests per path."""

    def __init__(self, root):
        self.counts = {}
        self.truncate = set()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server.counts[self.path] = server.counts.get(self.path, 0) + 1
                if self.path in server.truncate:
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.write(b"partial")
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    srv = _Server(root)
    srv.root = root
    yield srv
    srv.close()


def _serve_music(server, monkeypatch, tmp_path, *, corrupt=False):
    good = tmp_path / "good-data.csv"
    good.write_text(music_csv_text())
    served = server.root / "data.csv"
    served.write_text(music_csv_text(seed=99) if corrupt else good.read_text())
    trust(monkeypatch, "music-genre", good)
    table = dict(sources.SOURCES)
    table["music-genre"] = dataclasses.replace(
        table["music-genre"], origin=server.url + "/data.csv")
    monkeypatch.setattr(sources, "SOURCES", table)


def test_download_checks_hash_caches_and_shows_progress(
        server, monkeypatch, tmp_path, keras_datasets, capsys):
    _serve_music(server, monkeypatch, tmp_path)
    first = datasets.load("music_genre")
    assert server.counts == {"/data.csv": 1}
    assert "Downloading data from" in capsys.readouterr().out
    cached = keras_datasets / "music-genre-data.csv"
    assert cached.is_file() and not (keras_datasets / "music-genre-data.csv.part").exists()
    second = datasets.load("music_genre")
    assert server.counts == {"/data.csv": 1}  # served from the Keras cache
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert datasets.available().loc["music_genre", "cached"]


def test_corrupted_download_is_refused_and_not_kept(
        server, monkeypatch, tmp_path, keras_datasets):
    _serve_music(server, monkeypatch, tmp_path, corrupt=True)
    with pytest.raises(datasets.ChecksumError, match="data.csv"):
        datasets.load("music_genre")
    assert list(keras_datasets.iterdir()) == []


def test_interrupted_download_leaves_no_partial_file(
        server, monkeypatch, tmp_path, keras_datasets):
    _serve_music(server, monkeypatch, tmp_path)
    server.truncate.add("/data.csv")
    with pytest.raises(datasets.DatasetNotFoundError, match="data.csv"):
        datasets.load("music_genre")
    assert list(keras_datasets.iterdir()) == []


def test_local_copy_is_used_without_downloading(server, monkeypatch, tmp_path, data_dir):
    _serve_music(server, monkeypatch, tmp_path)
    (data_dir / "music-genre").mkdir()
    (data_dir / "music-genre" / "data.csv").write_text(music_csv_text())
    ds = datasets.load("music_genre", data_dir=data_dir)
    assert server.counts == {}
    assert ds.source == str(data_dir / "music-genre" / "data.csv")


def test_local_copy_with_wrong_hash_is_refused(monkeypatch, tmp_path, data_dir):
    trust(monkeypatch, "music-genre", _write(tmp_path / "x.csv", music_csv_text()))
    bad = _write(data_dir / "music-genre" / "data.csv", music_csv_text(seed=7))
    with pytest.raises(datasets.ChecksumError) as info:
        datasets.load("music_genre", data_dir=data_dir)
    message = str(info.value)
    assert str(bad) in message and "expected" in message
    assert sources.sha256_file(str(bad)) in message


def test_wrong_hash_in_keras_cache_is_refused(monkeypatch, tmp_path, keras_datasets):
    trust(monkeypatch, "music-genre", _write(tmp_path / "x.csv", music_csv_text()))
    _write(keras_datasets / "music-genre-data.csv", "truncated")
    with pytest.raises(datasets.ChecksumError, match="music-genre-data.csv"):
        datasets.load("music_genre")


def test_missing_source_error_names_file_origin_hash_and_env(monkeypatch):
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load("cifar100")
    message = str(info.value)
    for part in ("cifar-100-python.tar.gz", "http://127.0.0.1:9/",
                 "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
                 "LOOP_DATA_DIR", "cifar-100/cifar-100-python.tar.gz"):
        assert part in message


def test_data_dir_from_environment(monkeypatch, tmp_path, data_dir):
    trust(monkeypatch, "music-genre",
          _write(data_dir / "music-genre" / "data.csv", music_csv_text()))
    monkeypatch.setenv("LOOP_DATA_DIR", str(data_dir))
    assert datasets.load("music_genre").source.startswith(str(data_dir))
    monkeypatch.setenv("LOOP_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(NotADirectoryError, match="nope"):
        datasets.load("music_genre")


def test_save_npz_atomic_and_corrupted_cache(tmp_path):
    path = tmp_path / "cache" / "a.npz"
    sources.save_npz_atomic(str(path), x=np.arange(5))
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.npz"]
    assert sources.load_npz(str(path), ["x"])["x"].tolist() == [0, 1, 2, 3, 4]
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(datasets.CacheCorruptedError, match="a.npz.*[Dd]elete"):
        sources.load_npz(str(path), ["x"])


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
