"""Loaders on tiny fixtures written in every accepted format; cache; errors; download over local HTTP."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdbounds.data import cifar as cf
from kdbounds.data import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    ChecksumError,
    CorruptArchiveError,
    DataNotFoundError,
    download_cifar,
    find_cifar,
    load_cifar,
)

PER_CLASS_TRAIN, PER_CLASS_TEST = 2, 1


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KDBOUNDS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KDBOUNDS_DATA", raising=False)


def make_split(k: int, per_class: int, seed: int, smooth: bool = False):
    """Class-major images (per_class of each of k classes) and labels."""
    rng = np.random.default_rng(seed)
    n = k * per_class
    if smooth:  # JPEG-friendly: a colour per image plus a gentle gradient
        base = rng.integers(40, 200, size=(n, 1, 1, 3))
        grad = (np.arange(32)[None, :, None, None] * 2 + np.arange(32)[None, None, :, None])
        imgs = np.clip(base + grad // 3, 0, 255).astype(np.uint8)
    else:
        imgs = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(k), per_class).astype(np.int64)
    return imgs, labels


def to_rows(imgs: np.ndarray) -> np.ndarray:
    """NHWC -> official CIFAR rows (1024 R, 1024 G, 1024 B)."""
    return imgs.transpose(0, 3, 1, 2).reshape(len(imgs), 3072)


def pickle_bytes(d: dict) -> bytes:
    return pickle.dumps(d, protocol=2)


def write_batches_dir(root: Path, name: str, seed: int = 0):
    """Official python layout; returns {split: (imgs, labels)} in the order the files hold them."""
    k = 10 if name == "cifar10" else 100
    tr = make_split(k, PER_CLASS_TRAIN, seed)
    te = make_split(k, PER_CLASS_TEST, seed + 1)
    # interleave so batch order differs from class order
    perm = np.random.default_rng(seed + 2).permutation(len(tr[1]))
    tr = (tr[0][perm], tr[1][perm])
    if name == "cifar10":
        d = root / "cifar-10-batches-py"
        d.mkdir(parents=True)
        chunks = np.array_split(np.arange(len(tr[1])), 5)
        for i, ch in enumerate(chunks, 1):
            (d / f"data_batch_{i}").write_bytes(pickle_bytes(
                {b"batch_label": b"training batch", b"labels": tr[1][ch].tolist(), b"data": to_rows(tr[0][ch]),
                 b"filenames": [b"x.png"] * len(ch)}))
        (d / "test_batch").write_bytes(pickle_bytes(
            {b"batch_label": b"testing batch", b"labels": te[1].tolist(), b"data": to_rows(te[0])}))
        (d / "batches.meta").write_bytes(pickle_bytes({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}))
    else:
        d = root / "cifar-100-python"
        d.mkdir(parents=True)
        for split, (x, y) in (("train", tr), ("test", te)):
            (d / split).write_bytes(pickle_bytes(
                {b"fine_labels": y.tolist(), b"coarse_labels": (y // 5).tolist(), b"data": to_rows(x)}))
        (d / "meta").write_bytes(pickle_bytes({b"fine_label_names": [c.encode() for c in CIFAR100_CLASSES]}))
    return {"train": tr, "test": te}, d


def tar_dir(src: Path, out: Path, arcname: str) -> Path:
    with tarfile.open(out, "w:gz") as tf:
        tf.add(src, arcname=arcname)
    return out


def write_image_folder(root: Path, folder: str, classes, ext: str, seed: int = 0):
    k = len(classes)
    data = {"train": make_split(k, PER_CLASS_TRAIN, seed, smooth=True),
            "test": make_split(k, PER_CLASS_TEST, seed + 1, smooth=True)}
    for split, (x, y) in data.items():
        for i, (img, lab) in enumerate(zip(x, y)):
            d = root / folder / split / classes[lab]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:04d}{ext}", quality=95) if ext == ".jpg" else \
                Image.fromarray(img).save(d / f"{i:04d}{ext}")
    return data


# ------------------------------------------------------------------------------------------------
# formats
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_batches_dir_and_tar_exact(tmp_path, name):
    ref, d = write_batches_dir(tmp_path / "a", name)
    for split in ("train", "test"):
        x, y = load_cifar(name, root=tmp_path / "a", split=split)
        assert x.dtype == np.uint8 and x.shape == ref[split][0].shape and x.shape[1:] == (32, 32, 3)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(x, ref[split][0])
        np.testing.assert_array_equal(y, ref[split][1])
    # the official archive name, holding the same folder
    arch = tmp_path / "b" / cf._ARCHIVE_NAME[name]
    arch.parent.mkdir()
    tar_dir(d, arch, d.name)
    assert find_cifar(name, tmp_path / "b").kind == "batches_tar"
    for split in ("train", "test"):
        x, y = load_cifar(name, root=tmp_path / "b", split=split)
        np.testing.assert_array_equal(x, ref[split][0])
        np.testing.assert_array_equal(y, ref[split][1])


def test_png_folder_exact_and_class_order(tmp_path):
    ref = write_image_folder(tmp_path, "cifar10-png", CIFAR10_CLASSES, ".png")
    src = find_cifar("cifar10", tmp_path)
    assert src.kind == "image_dir"
    for split in ("train", "test"):
        x, y = load_cifar("cifar10", root=tmp_path, split=split)
        np.testing.assert_array_equal(x, ref[split][0])  # PNG is lossless
        np.testing.assert_array_equal(y, ref[split][1])  # alphabetical class order = CIFAR-10 order


def test_jpeg_folder_and_jpeg_tar_agree(tmp_path):
    ref = write_image_folder(tmp_path / "dir", "cifar10-jpg", CIFAR10_CLASSES, ".jpg")
    (tmp_path / "tar").mkdir()
    tar_dir(tmp_path / "dir" / "cifar10-jpg", tmp_path / "tar" / "cifar10-jpg.tar.gz", "cifar10-jpg")
    assert find_cifar("cifar10", tmp_path / "tar").kind == "image_tar"
    for split in ("train", "test"):
        xd, yd = load_cifar("cifar10", root=tmp_path / "dir", split=split)
        xt, yt = load_cifar("cifar10", root=tmp_path / "tar", split=split)
        np.testing.assert_array_equal(xd, xt)
        np.testing.assert_array_equal(yd, yt)
        np.testing.assert_array_equal(yt, ref[split][1])
        err = np.abs(xt.astype(int) - ref[split][0].astype(int)).mean()
        assert err < 4.0, err  # lossy JPEG of smooth images stays close to the source


def test_numeric_class_folders_and_natural_file_order(tmp_path):
    classes = [str(i) for i in range(10)]  # '10' would sort before '2' alphabetically; numeric order is used
    rng = np.random.default_rng(3)
    for split in ("train", "test"):
        for c in classes:
            d = tmp_path / "my-cifar10" / split / c
            d.mkdir(parents=True)
            for j in (10, 2):  # natural order: 2 before 10
                img = np.full((32, 32, 3), 10 * j + int(c), np.uint8)
                img[0, 0] = rng.integers(0, 255, 3)
                Image.fromarray(img).save(d / f"img{j}.png")
    x, y = load_cifar("cifar10", root=tmp_path)
    np.testing.assert_array_equal(y, np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(x[:, 5, 5, 0], [20 + c if j == 0 else 100 + c for c in range(10) for j in (0, 1)])


def test_cifar10_folder_not_taken_for_cifar100(tmp_path):
    write_image_folder(tmp_path, "cifar10-png", CIFAR10_CLASSES, ".png")
    with pytest.raises(DataNotFoundError):
        find_cifar("cifar100", tmp_path)


def test_wrong_class_count_is_clear(tmp_path):
    write_image_folder(tmp_path, "cifar10-png", CIFAR10_CLASSES[:7], ".png")
    with pytest.raises(CorruptArchiveError, match="7 class folders"):
        load_cifar("cifar10", root=tmp_path)


# ------------------------------------------------------------------------------------------------
# root resolution and missing data
# ------------------------------------------------------------------------------------------------

def test_env_var_and_standard_places(tmp_path, monkeypatch):
    ref, _ = write_batches_dir(tmp_path / "envroot", "cifar10")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDBOUNDS_DATA", str(tmp_path / "envroot"))
    x, _ = load_cifar("cifar10")
    np.testing.assert_array_equal(x, ref["train"][0])
    # without the variable: ~/.cache/kdbounds/data is a standard place
    monkeypatch.delenv("KDBOUNDS_DATA")
    ref2, _ = write_batches_dir(tmp_path / "home" / ".cache" / "kdbounds" / "data", "cifar10", seed=5)
    x, _ = load_cifar("cifar10")
    np.testing.assert_array_equal(x, ref2["train"][0])
    assert candidate_places_contain(tmp_path / "data", tmp_path.parent / "shared" / "data")


def candidate_places_contain(*paths: Path) -> bool:
    places = cf.candidate_roots()
    return all(p in places for p in paths)


def test_missing_data_error_lists_places_and_fix(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError) as ei:
        load_cifar("cifar10", root=empty)
    msg = str(ei.value)
    assert str(empty) in msg and "KDBOUNDS_DATA" in msg and "cifar-10-batches-py" in msg
    assert "cifar10-jpg.tar.gz" in msg and "download=True" in msg
    # default resolution: every place is listed
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(empty)
    monkeypatch.setenv("KDBOUNDS_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as ei:
        load_cifar("cifar100")
    for p in cf.candidate_roots():
        assert str(p) in str(ei.value)
    assert "(does not exist)" in str(ei.value)


def test_bad_name_and_split():
    with pytest.raises(ValueError, match="cifar10, cifar100"):
        load_cifar("cifar1000")
    with pytest.raises(ValueError, match="split: expected one of 'train', 'test', got 'val'"):
        load_cifar("cifar10", split="val")


# ------------------------------------------------------------------------------------------------
# corrupt inputs
# ------------------------------------------------------------------------------------------------

def test_truncated_archive_names_the_file(tmp_path):
    _, d = write_batches_dir(tmp_path / "src", "cifar10")
    full = tar_dir(d, tmp_path / "full.tar.gz", d.name).read_bytes()
    root = tmp_path / "root"
    root.mkdir()
    bad = root / "cifar-10-python.tar.gz"
    bad.write_bytes(full[: len(full) // 2])
    with pytest.raises(CorruptArchiveError, match="cifar-10-python.tar.gz") as ei:
        load_cifar("cifar10", root=root)
    assert "truncated or corrupt" in str(ei.value)
    assert not any((tmp_path / "cache").rglob("*.npz"))  # nothing cached from a corrupt source


def test_bad_pickle_names_the_file(tmp_path):
    _, d = write_batches_dir(tmp_path, "cifar10")
    (d / "data_batch_3").write_bytes(b"this is not a pickle")
    with pytest.raises(CorruptArchiveError, match="data_batch_3"):
        load_cifar("cifar10", root=tmp_path)


def test_pickle_with_foreign_globals_is_refused(tmp_path):
    _, d = write_batches_dir(tmp_path, "cifar10")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    (d / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(CorruptArchiveError, match="refusing"):
        load_cifar("cifar10", root=tmp_path, split="test")
    assert not marker.exists()


def test_missing_batch_and_bad_jpeg(tmp_path):
    _, d = write_batches_dir(tmp_path / "a", "cifar10")
    (d / "data_batch_5").unlink()
    with pytest.raises(CorruptArchiveError, match="data_batch_5"):
        load_cifar("cifar10", root=tmp_path / "a")
    write_image_folder(tmp_path / "b", "cifar10-jpg", CIFAR10_CLASSES, ".jpg")
    bad = tmp_path / "b" / "cifar10-jpg" / "test" / "cat" / "0003.jpg"
    bad.write_bytes(b"\xff\xd8 broken")
    with pytest.raises(CorruptArchiveError, match="0003.jpg"):
        load_cifar("cifar10", root=tmp_path / "b")


# ------------------------------------------------------------------------------------------------
# cache
# ------------------------------------------------------------------------------------------------

def test_cache_hit_and_invalidation(tmp_path, monkeypatch):
    ref, d = write_batches_dir(tmp_path / "root", "cifar10")
    x1, y1 = load_cifar("cifar10", root=tmp_path / "root")
    files = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(files) == 2  # both splits cached by one decode
    assert not list((tmp_path / "cache").rglob("*.tmp"))

    def boom(src):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(cf, "decode_source", boom)
    x2, y2 = load_cifar("cifar10", root=tmp_path / "root", split="test")
    np.testing.assert_array_equal(x2, ref["test"][0])
    x3, _ = load_cifar("cifar10", root=tmp_path / "root")
    np.testing.assert_array_equal(x3, x1)
    # touching a source file changes the key -> decode again
    st = (d / "test_batch").stat()
    os.utime(d / "test_batch", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded although cached"):
        load_cifar("cifar10", root=tmp_path / "root")


def test_cache_false_writes_nothing_and_corrupt_cache_is_rebuilt(tmp_path):
    ref, _ = write_batches_dir(tmp_path / "root", "cifar10")
    load_cifar("cifar10", root=tmp_path / "root", cache=False)
    assert not (tmp_path / "cache").exists()
    load_cifar("cifar10", root=tmp_path / "root")
    for f in (tmp_path / "cache").rglob("*.npz"):
        f.write_bytes(b"garbage")
    x, _ = load_cifar("cifar10", root=tmp_path / "root")
    np.testing.assert_array_equal(x, ref["train"][0])


@pytest.mark.parametrize("tamper", ["other_images_same_hash", "no_hash", "labels_swapped"])
def test_well_formed_cache_with_wrong_contents_is_detected_and_rebuilt(tmp_path, tamper):
    """A valid .npz whose arrays do not match their stored content hash is never used (oracle: the
    fixture's reference arrays)."""
    ref, _ = write_batches_dir(tmp_path / "root", "cifar10")
    load_cifar("cifar10", root=tmp_path / "root")
    for f in (tmp_path / "cache").rglob("*train*.npz"):
        with np.load(f) as z:
            x, y, h = z["images"].copy(), z["labels"].copy(), z["sha256"]
        if tamper == "other_images_same_hash":
            np.savez(f, images=255 - x, labels=y, sha256=h)
        elif tamper == "no_hash":
            np.savez(f, images=255 - x, labels=y)
        else:
            np.savez(f, images=x, labels=np.roll(y, 1), sha256=h)
    x2, y2 = load_cifar("cifar10", root=tmp_path / "root")
    np.testing.assert_array_equal(x2, ref["train"][0])
    np.testing.assert_array_equal(y2, ref["train"][1])


# ------------------------------------------------------------------------------------------------
# download over a local HTTP server
# ------------------------------------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served_archive(tmp_path):
    ref, d = write_batches_dir(tmp_path / "build", "cifar10")
    site = tmp_path / "site"
    site.mkdir()
    arch = tar_dir(d, site / "cifar-10-python.tar.gz", d.name)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(site)))
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz",
               "bytes": arch.read_bytes(), "ref": ref}
    finally:
        server.shutdown()
        server.server_close()


def test_download_verifies_and_loads(tmp_path, served_archive):
    data = served_archive["bytes"]
    root = tmp_path / "dl"
    p = download_cifar("cifar10", root, url=served_archive["url"], md5=hashlib.md5(data).hexdigest())
    assert p == root / "cifar-10-python.tar.gz" and p.read_bytes() == data
    assert sorted(os.listdir(root)) == ["cifar-10-python.tar.gz"]
    x, y = load_cifar("cifar10", root=root, split="test")
    np.testing.assert_array_equal(x, served_archive["ref"]["test"][0])
    # sha256 also accepted; an already verified file is kept
    p2 = download_cifar("cifar10", root, url=served_archive["url"] + "-gone",
                        sha256=hashlib.sha256(data).hexdigest())
    assert p2 == p


def test_download_checksum_mismatch_leaves_nothing(tmp_path, served_archive):
    root = tmp_path / "dl"
    with pytest.raises(ChecksumError, match="does not match") as ei:
        download_cifar("cifar10", root, url=served_archive["url"], md5="0" * 32)
    assert served_archive["url"] in str(ei.value)
    assert os.listdir(root) == []  # no partial or corrupt file
    # default verification uses the official MD5: the tiny archive cannot pass it
    with pytest.raises(ChecksumError, match=cf.CIFAR_MD5["cifar10"]):
        download_cifar("cifar10", root, url=served_archive["url"])
    assert os.listdir(root) == []
    with pytest.raises(DataNotFoundError):
        load_cifar("cifar10", root=root)
    assert not (tmp_path / "cache").exists()


def test_download_unreachable_is_clear(tmp_path, served_archive):
    with pytest.raises(ConnectionError, match="KDBOUNDS_DATA"):
        download_cifar("cifar10", tmp_path / "dl", url=served_archive["url"].replace(".tar.gz", ".nope"))
    assert os.listdir(tmp_path / "dl") == []


def test_load_with_download_flag(tmp_path, served_archive, monkeypatch):
    monkeypatch.setitem(cf.CIFAR_URLS, "cifar10", served_archive["url"])
    monkeypatch.setitem(cf.CIFAR_MD5, "cifar10", hashlib.md5(served_archive["bytes"]).hexdigest())
    root = tmp_path / "fresh"
    with pytest.raises(DataNotFoundError):
        load_cifar("cifar10", root=root)
    x, y = load_cifar("cifar10", root=root, download=True)
    np.testing.assert_array_equal(x, served_archive["ref"]["train"][0])
    np.testing.assert_array_equal(y, served_archive["ref"]["train"][1])


# ------------------------------------------------------------------------------------------------
# tar reading: fast header walk against tarfile, fallbacks, corruption
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("compression", ["", "gz", "xz"])
def test_tar_members_match_tarfile(tmp_path, fmt, compression):
    rng = np.random.default_rng(0)
    names = ["a/train/cat/1.jpg", "a/test/dog/22.png", "d" * 60 + "/" + "e" * 60 + "/f.bin"]
    if fmt != tarfile.USTAR_FORMAT:
        names.append("g" * 150 + ".bin")  # long name: GNU 'L' / pax header -> tarfile fallback
    contents = {nm: rng.integers(0, 256, int(rng.integers(0, 1500)), dtype=np.uint8).tobytes() for nm in names}
    path = tmp_path / ("x.tar" + (f".{compression}" if compression else ""))
    with tarfile.open(path, f"w:{compression}", format=fmt) as tf:
        for nm, b in contents.items():
            info = tarfile.TarInfo(nm)
            info.size = len(b)
            tf.addfile(info, io.BytesIO(b))
        d = tarfile.TarInfo("a/emptydir")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
    assert dict(cf._iter_tar(path)) == contents
    fast = cf._fast_tar_index(cf._decompress_all(path))
    assert (fast is None) == (fmt != tarfile.USTAR_FORMAT)  # long names need the tarfile fallback


def test_tar_header_checksum_corruption(tmp_path):
    path = tmp_path / "cifar10-jpg.tar"
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for i in range(3):
            info = tarfile.TarInfo(f"cifar10-jpg/train/cat/{i}.jpg")
            info.size = 10
            tf.addfile(info, io.BytesIO(bytes(10)))
    raw = bytearray(path.read_bytes())
    raw[1024 + 5] ^= 1  # a name byte of the second header
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptArchiveError, match="cifar10-jpg.tar"):
        dict(cf._iter_tar(path))


def test_root_may_be_the_archive_itself(tmp_path):
    ref = write_image_folder(tmp_path / "dir", "cifar10-png", CIFAR10_CLASSES, ".png")
    arch = tar_dir(tmp_path / "dir" / "cifar10-png", tmp_path / "anything.tar.gz", "cifar10-png")
    x, y = load_cifar("cifar10", root=arch, split="test")
    np.testing.assert_array_equal(x, ref["test"][0])
    np.testing.assert_array_equal(y, ref["test"][1])


@pytest.mark.skipif(os.name != "posix", reason="flock is POSIX")
def test_concurrent_loads_decode_once(tmp_path, monkeypatch):
    ref, _ = write_batches_dir(tmp_path / "root", "cifar10")
    real_decode, calls = cf.decode_source, []

    def slow_decode(src):
        calls.append(src)
        import time

        time.sleep(0.3)
        return real_decode(src)

    monkeypatch.setattr(cf, "decode_source", slow_decode)
    results = {}

    def work(split):
        results[split] = load_cifar("cifar10", root=tmp_path / "root", split=split)

    threads = [threading.Thread(target=work, args=(s,)) for s in ("train", "test", "train")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    np.testing.assert_array_equal(results["test"][0], ref["test"][0])
    np.testing.assert_array_equal(results["train"][1], ref["train"][1])
