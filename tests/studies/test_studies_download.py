"""First run anywhere: a study whose data is found nowhere downloads CIFAR-10 (checksum-verified) to
the user cache, or fails clearly (``--no-download``, no network, checksum mismatch).

Oracle: a local HTTP server serving a small archive in the official layout; the arrays decoded from
the downloaded copy against those written into the archive; the file system (nothing left behind).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import os
import tarfile
import threading

import numpy as np
import pytest

from fake_cifar import write_fake_cifar10
from kdbounds.data import cifar_sources
from kdbounds.data import load_cifar
from kdbounds.studies import _cli
from kdbounds.studies import functional_transfer as ft


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A served cifar-10-python.tar.gz; HOME, cwd and caches isolated so no real data is found."""
    src = write_fake_cifar10(tmp_path / "build", per_class_train=2, per_class_test=1)
    www = tmp_path / "www"
    www.mkdir()
    arch = www / "cifar-10-python.tar.gz"
    with tarfile.open(arch, "w:gz") as tf:
        tf.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(www)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    home = tmp_path / "home"
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.delenv("KDBOUNDS_DATA", raising=False)
    monkeypatch.setenv("KDBOUNDS_CACHE", str(tmp_path / "kdcache"))
    url = f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz"
    monkeypatch.setitem(cifar_sources.CIFAR_URLS, "cifar10", url)
    monkeypatch.setitem(cifar_sources.CIFAR_MD5, "cifar10", hashlib.md5(arch.read_bytes()).hexdigest())
    try:
        yield {"url": url, "home": home, "src": src}
    finally:
        server.shutdown()
        server.server_close()


def test_missing_data_is_downloaded_to_the_user_cache_and_the_config_points_there(site, capsys):
    cfg = _cli.with_data(ft.PRESETS["smoke"], download=True, progress=False)
    target = site["home"] / ".cache" / "kdbounds" / "data"
    assert cfg.data_root == str(target)
    assert sorted(os.listdir(target)) == ["cifar-10-python.tar.gz"]
    out = capsys.readouterr().out
    assert f"downloading it to {target}" in out and "--no-download" in out
    x, y = load_cifar("cifar10", root=cfg.data_root, split="test")
    ref_x, ref_y = load_cifar("cifar10", root=site["src"], split="test")
    np.testing.assert_array_equal(x, ref_x)
    np.testing.assert_array_equal(y, ref_y)
    # found now (the user cache is a standard place): nothing downloaded, config unchanged
    again = _cli.with_data(ft.PRESETS["smoke"], download=True, progress=False)
    assert again == ft.PRESETS["smoke"] and "downloading" not in capsys.readouterr().out


def test_found_data_is_never_downloaded(site, monkeypatch):
    monkeypatch.setitem(cifar_sources.CIFAR_URLS, "cifar10", "http://127.0.0.1:9/nothing-here")
    cfg = dataclasses.replace(ft.PRESETS["smoke"], data_root=str(site["src"]))
    assert _cli.with_data(cfg, download=True) is cfg


def test_no_download_names_the_flag_and_where_to_put_the_data(site):
    with pytest.raises(SystemExit) as ei:
        _cli.with_data(ft.PRESETS["smoke"], download=False)
    msg = str(ei.value)
    assert "--no-download" in msg and str(site["home"] / ".cache" / "kdbounds" / "data") in msg
    assert "cifar-10-python.tar.gz" in msg
    assert not (site["home"] / ".cache").exists()


def test_no_network_is_clear_and_leaves_nothing(site, monkeypatch):
    monkeypatch.setitem(cifar_sources.CIFAR_URLS, "cifar10", site["url"].replace(".tar.gz", ".missing"))
    with pytest.raises(SystemExit) as ei:
        _cli.with_data(ft.PRESETS["smoke"], download=True, progress=False)
    msg = str(ei.value)
    assert "No network?" in msg and "--no-download" in msg and "KDBOUNDS_DATA" in msg
    target = site["home"] / ".cache" / "kdbounds" / "data"
    assert str(target) in msg and list(target.iterdir()) == []


def test_checksum_mismatch_leaves_nothing_behind(site, monkeypatch):
    monkeypatch.setitem(cifar_sources.CIFAR_MD5, "cifar10", "0" * 32)
    with pytest.raises(SystemExit, match="does not match") as ei:
        _cli.with_data(ft.PRESETS["smoke"], download=True, progress=False)
    target = site["home"] / ".cache" / "kdbounds" / "data"
    assert list(target.iterdir()) == [] and "Retry" in str(ei.value)


def test_an_explicit_missing_root_is_where_the_download_goes(site, tmp_path):
    root = tmp_path / "mine"
    cfg = _cli.with_data(dataclasses.replace(ft.PRESETS["smoke"], data_root=str(root)), progress=False)
    assert cfg.data_root == str(root) and (root / "cifar-10-python.tar.gz").is_file()
    assert not (site["home"] / ".cache" / "kdbounds" / "data").exists()
