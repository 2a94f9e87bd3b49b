"""The image file store: staged writes, hashes computed while writing, safe locations."""

from __future__ import annotations

import hashlib
import struct

import pytest

from cirrus.storage.filestore import STAGING, FileStore, qcow2_virtual_size


def test_commit_moves_data_into_place_with_size_and_hashes(tmp_path):
    store = FileStore(tmp_path / "images")
    writer = store.writer("img-1")
    data = [b"abc" * 1000, b"", b"xyz" * 7]
    for chunk in data:
        writer.write(chunk)
    stored = writer.commit()
    whole = b"".join(data)
    assert stored.size == len(whole)
    assert stored.checksum == hashlib.md5(whole).hexdigest()
    assert stored.os_hash_algo == "sha512"
    assert stored.os_hash_value == hashlib.sha512(whole).hexdigest()
    assert store.path_of(stored.location).read_bytes() == whole
    assert stored.location == (tmp_path / "images" / "img-1").resolve().as_uri()
    assert list((tmp_path / "images" / STAGING).iterdir()) == []


def test_data_is_not_in_place_before_commit(tmp_path):
    store = FileStore(tmp_path)
    writer = store.writer("img-2")
    writer.write(b"partial")
    assert not (tmp_path / "img-2").exists()
    writer.abort()


def test_abort_removes_the_partial_file_and_is_repeatable(tmp_path):
    store = FileStore(tmp_path)
    writer = store.writer("img-3")
    writer.write(b"half an image")
    writer.abort()
    writer.abort()
    assert not (tmp_path / "img-3").exists()
    assert list((tmp_path / STAGING).iterdir()) == []
    with pytest.raises(ValueError):
        writer.write(b"more")


def test_open_reads_back_and_delete_removes(tmp_path):
    store = FileStore(tmp_path)
    writer = store.writer("img-4")
    writer.write(b"payload")
    location = writer.commit().location
    with store.open(location) as fh:
        assert fh.read() == b"payload"
    store.delete(location)
    assert not (tmp_path / "img-4").exists()
    store.delete(location)  # already gone: no error
    store.delete(None)


def test_locations_outside_the_store_are_refused(tmp_path):
    store = FileStore(tmp_path / "images")
    (tmp_path / "secret").write_text("x")
    with pytest.raises(ValueError):
        store.path_of((tmp_path / "secret").as_uri())
    with pytest.raises(ValueError):
        store.path_of("http://example.com/img")
    store.delete((tmp_path / "secret").as_uri())
    assert (tmp_path / "secret").exists()


@pytest.mark.parametrize("bad_id", ["", "../etc", "a/b", ".staging"])
def test_bad_image_ids_cannot_name_files(tmp_path, bad_id):
    with pytest.raises(ValueError):
        FileStore(tmp_path).writer(bad_id)


def test_clean_staging_removes_leftovers_of_interrupted_uploads(tmp_path):
    store = FileStore(tmp_path)
    writer = store.writer("img-5")
    writer.write(b"left behind")
    assert store.clean_staging() == 1
    assert list((tmp_path / STAGING).iterdir()) == []


def test_qcow2_header_gives_the_virtual_size(tmp_path):
    header = b"QFI\xfb" + struct.pack(">IQIIQ", 3, 0, 0, 16, 10 * 2**30)
    assert qcow2_virtual_size(header) == 10 * 2**30
    assert qcow2_virtual_size(b"\x00" * 64) is None
    assert qcow2_virtual_size(b"QFI\xfb") is None

    writer = FileStore(tmp_path).writer("img-6")
    writer.write(header[:10])  # the header may arrive split across chunks
    writer.write(header[10:] + b"\x00" * 100)
    assert writer.commit().qcow2_virtual_size == 10 * 2**30
