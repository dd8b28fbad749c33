"""Where each dataset's original files come from, and how they are fetched.

This module owns the registry of source files (name, origin URL, sha256) and
the one function, `fetch`, that turns a `Source` into a verified local path:

1. a local copy under ``data_dir`` (argument) or ``$LOOP_DATA_DIR``, checked
   against the known sha256 and refused on mismatch; otherwise
2. the Keras download cache (``$KERAS_HOME/datasets``, default
   ``~/.keras/datasets``), filled by `keras.utils.get_file`, which does the
   download, progress bar and hash check.

Downloads go to ``<name>.part`` and are renamed into place only after the
hash matched, so an interrupted or corrupted download never leaves a file
that a later call could mistake for a good one. Nothing is downloaded while a
valid local or cached copy exists.

It also owns the cache of preprocessed arrays (``cache_dir`` argument,
``$LOOP_CACHE_DIR``, default ``$KERAS_HOME/loop-cache``) and its atomic
writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import tempfile
import zipfile

import numpy as np

DATA_DIR_ENV = "LOOP_DATA_DIR"
CACHE_DIR_ENV = "LOOP_CACHE_DIR"


class DatasetNotFoundError(FileNotFoundError):
    """No local copy of a source file, and it could not be downloaded."""


class ChecksumError(ValueError):
    """A file's sha256 does not match any hash known for it."""


class CacheCorruptedError(RuntimeError):
    """A cached preprocessed file cannot be read (corrupted or truncated)."""


@dataclasses.dataclass(frozen=True)
class Source:
    """One original file of a dataset.

    Attributes:
        local_path: path relative to the data directory, e.g.
            ``"mnist/train-images-idx3-ubyte.gz"``.
        origin: URL it is downloaded from when there is no local copy, or
            None when it cannot be downloaded.
        sha256: accepted sha256 hashes; empty means "not verifiable" (the
            file is then checked only by structure when it is read).
        cache_name: file name in the Keras cache (``$KERAS_HOME/<subdir>``).
        cache_subdir: Keras cache subdirectory.
    """

    local_path: str
    origin: str | None
    sha256: tuple[str, ...]
    cache_name: str | None = None
    cache_subdir: str = "datasets"

    @property
    def filename(self) -> str:
        return os.path.basename(self.local_path)

    def describe(self) -> str:
        hashes = " or ".join(self.sha256) if self.sha256 else "(none known)"
        return (
            f"  file:   {self.local_path}\n"
            f"  origin: {self.origin or '(no public download)'}\n"
            f"  sha256: {hashes}"
        )


_KERAS_DATASETS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_KUMAR = (
    "https://raw.githubusercontent.com/kumargauravsingh14/"
    "music-genre-classification/master/data.csv"
)
_STANFORD_ZIP = "http://cs.stanford.edu/people/alecmgo/trainingandtestdata.zip"


def _idx(subdir, fname, sha, cache_subdir):
    return Source(
        f"{subdir}/{fname}",
        _KERAS_DATASETS + fname,
        (sha,),
        cache_name=fname,
        cache_subdir=cache_subdir,
    )


# The sha256 of the local files are those of the canonical downloads (the md5s
# published by the authors match; see /work/shared/data/SOURCES.md).
SOURCES: dict[str, Source] = {
    # MNIST: local canonical IDX files, or Keras' own mnist.npz.
    "mnist/train-images": _idx("mnist", "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "datasets/mnist"),
    "mnist/train-labels": _idx("mnist", "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "datasets/mnist"),
    "mnist/test-images": _idx("mnist", "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "datasets/mnist"),
    "mnist/test-labels": _idx("mnist", "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "datasets/mnist"),
    "mnist/npz": Source(
        "mnist/mnist.npz",
        _KERAS_DATASETS + "mnist.npz",
        ("731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",),
        cache_name="mnist.npz",
    ),
    # Fashion-MNIST: the same four IDX files locally and in Keras' cache
    # (keras.datasets.fashion_mnist uses datasets/fashion-mnist/).
    "fashion-mnist/train-images": _idx("fashion-mnist", "train-images-idx3-ubyte.gz",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "datasets/fashion-mnist"),
    "fashion-mnist/train-labels": _idx("fashion-mnist", "train-labels-idx1-ubyte.gz",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "datasets/fashion-mnist"),
    "fashion-mnist/test-images": _idx("fashion-mnist", "t10k-images-idx3-ubyte.gz",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "datasets/fashion-mnist"),
    "fashion-mnist/test-labels": _idx("fashion-mnist", "t10k-labels-idx1-ubyte.gz",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        "datasets/fashion-mnist"),
    # CIFAR-10: canonical archive, or the lossless re-encoding in SOURCES.md.
    "cifar-10": Source(
        "cifar-10/cifar-10-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        ("6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
         "ea31435ec7025058a563fcd0d336ec137721d41e0a5075ad74b05a7d0e2dbf4c"),
        cache_name="cifar-10-python.tar.gz",
    ),
    "cifar-100": Source(
        "cifar-100/cifar-100-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        ("85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",),
        cache_name="cifar-100-python.tar.gz",
    ),
    # Sentiment140. The full 1.6M-row training CSV has no published hash; it
    # is checked by structure. The 20,000-row slice and the test CSV are
    # checked by the sha256 of the copies described in SOURCES.md; the zip is
    # checked by the hash tensorflow-datasets records for it.
    "sentiment140/train-full": Source(
        "sentiment140/training.1600000.processed.noemoticon.csv", None, ()),
    "sentiment140/train-slice": Source(
        "sentiment140/training.1600000.processed.noemoticon.head9999_tail10001.csv",
        None,
        ("a41c31bc15988dbefe7fcb29e36e36be50eb3b9dc555e5a4cd6f4df4877bf9a7",),
    ),
    "sentiment140/test": Source(
        "sentiment140/testdata.manual.2009.06.14.csv",
        None,
        ("c77669cc86ae85d3807d65fc13fed0c395266db518d4eaa0ff1f19bf6efbbdd3",),
    ),
    "sentiment140/zip": Source(
        "sentiment140/trainingandtestdata.zip",
        _STANFORD_ZIP,
        ("004a3772c8a7ff9bbfeb875880f47f0679d93fc63e5cf9cff72d54a8a6162e57",),
        cache_name="trainingandtestdata.zip",
    ),
    "music-genre": Source(
        "music-genre/data.csv",
        _KUMAR,
        ("7280546b8b5f39b9867239a18985ad8b7603cd313b2c80df7c3e029ed51325b1",),
        cache_name="music-genre-data.csv",
    ),
    "boston-housing/csv": Source(
        "boston-housing/BostonHousing.csv",
        None,
        ("ab16ba38fbbbbcc69fe930aab1293104f1442c8279c130d9eba03dd864bef675",),
    ),
    "boston-housing/npz": Source(
        "boston-housing/boston_housing.npz",
        _KERAS_DATASETS + "boston_housing.npz",
        ("f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5",),
        cache_name="boston_housing.npz",
    ),
}


# ---------------------------------------------------------------- directories


def keras_home() -> str:
    """`$KERAS_HOME` or ``~/.keras``, read at call time (Keras reads it once)."""
    return os.path.expanduser(os.environ.get("KERAS_HOME") or "~/.keras")


def resolve_data_dir(data_dir: str | os.PathLike | None) -> str | None:
    """The local data directory: the argument, else `$LOOP_DATA_DIR`, else None."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
    if data_dir is None:
        return None
    data_dir = os.path.expanduser(os.fspath(data_dir))
    if not os.path.isdir(data_dir):
        raise NotADirectoryError(
            f"data_dir {data_dir!r} (from the argument or ${DATA_DIR_ENV}) "
            "is not a directory."
        )
    return data_dir


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> str:
    """Cache of preprocessed arrays: argument, `$LOOP_CACHE_DIR`, or KERAS_HOME."""
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_DIR_ENV) or os.path.join(
            keras_home(), "loop-cache"
        )
    return os.path.expanduser(os.fspath(cache_dir))


def keras_cache_path(source: Source) -> str | None:
    if source.cache_name is None:
        return None
    return os.path.join(keras_home(), source.cache_subdir, source.cache_name)


# --------------------------------------------------------------------- hashes


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str) -> str:
    """sha256 of a file, memoized per (path, size, mtime) within a process."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_MEMO:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASH_MEMO[key] = digest.hexdigest()
    return _HASH_MEMO[key]


def verify(path: str, source: Source) -> str:
    """Returns the file's sha256, or raises ChecksumError if it is not known."""
    actual = sha256_file(path)
    if source.sha256 and actual not in source.sha256:
        raise ChecksumError(
            f"Refusing {path}: its sha256 is {actual}, expected "
            f"{' or '.join(source.sha256)}. The file is corrupted, truncated "
            "or a different version; delete it and download it again from "
            f"{source.origin or 'its origin (see docs/datasets.md)'}."
        )
    return actual


# ------------------------------------------------------------------- fetching


def local_copy(source: Source, data_dir: str | None) -> str | None:
    """Path of a verified local copy under data_dir, or None if absent."""
    if data_dir is None:
        return None
    path = os.path.join(data_dir, source.local_path)
    if not os.path.isfile(path):
        return None
    verify(path, source)
    return path


def fetch(source: Source, data_dir: str | None, *, download: bool = True) -> str:
    """A verified local path for `source`.

    Looks in data_dir, then in the Keras cache, then downloads with
    `keras.utils.get_file` (unless download is False).

    Raises:
        ChecksumError: a local, cached or downloaded copy has the wrong hash.
        DatasetNotFoundError: no copy, and the download failed or is off.
    """
    path = local_copy(source, data_dir)
    if path is not None:
        return path
    target = keras_cache_path(source)
    if target is not None and os.path.isfile(target):
        verify(target, source)
        return target
    if not download or source.origin is None or target is None:
        raise not_found_error(source, data_dir)
    return _download(source, target, data_dir)


def _download(source: Source, target: str, data_dir: str | None) -> str:
    import keras  # Imported late: only downloads need it.

    partial = None
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        partial = keras.utils.get_file(
            fname=os.path.basename(target) + ".part",
            origin=source.origin,
            file_hash=source.sha256[0] if source.sha256 else None,
            cache_dir=keras_home(),
            cache_subdir=source.cache_subdir,
            force_download=True,
        )
        verify(partial, source)
    except ChecksumError:
        _remove(partial or target + ".part")
        raise
    except ValueError as e:  # get_file's "Incomplete or corrupted file".
        _remove(partial or target + ".part")
        raise ChecksumError(
            f"Refusing the download of {source.origin}: {e} Nothing was kept."
        ) from e
    except BaseException as e:
        _remove(partial or target + ".part")
        if isinstance(e, Exception):
            raise not_found_error(source, data_dir, cause=e) from e
        raise
    # get_file may fall back to /tmp/.keras when KERAS_HOME is read-only.
    final = os.path.join(os.path.dirname(partial), os.path.basename(target))
    os.replace(partial, final)
    return final


def not_found_error(source: Source, data_dir: str | None, cause=None):
    where = data_dir or f"${DATA_DIR_ENV} (unset)"
    reason = f"Download failed: {cause}\n" if cause is not None else ""
    return DatasetNotFoundError(
        f"Dataset file {source.filename} is not available.\n"
        f"{source.describe()}\n"
        f"{reason}"
        f"Looked in the data directory {where} and the Keras cache "
        f"({keras_home()}). Put a copy at <data_dir>/{source.local_path} and "
        f"pass data_dir=... to load() or set ${DATA_DIR_ENV}=<data_dir>."
    )


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


# ------------------------------------------------------- derived-file cache


def extracted(archive: str, archive_sha256: str, cache_dir: str, name: str) -> str:
    """Extracts a tar.gz/zip once into cache_dir; returns the directory.

    The directory is keyed by the archive's hash and written atomically
    (extracted into a temporary directory, then renamed).
    """
    final = os.path.join(cache_dir, f"{name}-{archive_sha256[:16]}")
    if os.path.isdir(final):
        return final
    os.makedirs(cache_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}-", dir=cache_dir)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            import tarfile

            with tarfile.open(archive) as t:
                t.extractall(tmp, filter="data")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private.
        try:
            os.replace(tmp, final)
        except OSError:  # Another process won the race.
            if not os.path.isdir(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def save_npz_atomic(path: str, **arrays) -> None:
    """Writes an .npz via a temporary file and os.replace."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz.tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private.
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def load_npz(path: str, keys) -> dict[str, np.ndarray]:
    """Reads the given keys of a cached .npz, or raises CacheCorruptedError."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in keys}
    except Exception as e:
        raise CacheCorruptedError(
            f"Cached file {path} is corrupted or truncated ({type(e).__name__}: "
            f"{e}). Delete it and load again to rebuild it."
        ) from e
