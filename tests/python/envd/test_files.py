"""Files and directory watching through the unmodified e2b SDK."""

import os
import time

import pytest
from e2b import FileType
from e2b.exceptions import NotFoundException, SandboxException


def test_write_read_text_and_bytes(sandbox, tmp):
    p = str(tmp / "a.txt")
    info = sandbox.files.write(p, "hello")
    assert info.path == p and info.name == "a.txt"
    assert sandbox.files.read(p) == "hello"
    sandbox.files.write(p, b"\x00\xffbin")
    assert bytes(sandbox.files.read(p, format="bytes")) == b"\x00\xffbin"


def test_write_makes_parents(sandbox, tmp):
    p = tmp / "x" / "y" / "z.txt"
    sandbox.files.write(str(p), "deep")
    assert p.read_text() == "deep"


def test_paths_with_spaces_and_newlines(sandbox, tmp):
    p = str(tmp / "with space" / "new\nline.txt")
    sandbox.files.write(p, "odd")
    assert sandbox.files.read(p) == "odd"
    names = [e.name for e in sandbox.files.list(str(tmp / "with space"))]
    assert names == ["new\nline.txt"]


def test_write_files_multipart(sandbox, tmp):
    from e2b.sandbox.filesystem.filesystem import WriteEntry

    infos = sandbox.files.write_files(
        [WriteEntry(path=str(tmp / "m1"), data="one"), WriteEntry(path=str(tmp / "m2"), data="two")]
    )
    assert sorted(i.name for i in infos) == ["m1", "m2"]
    assert (tmp / "m2").read_text() == "two"


def test_list_exists_info_make_dir_rename_remove(sandbox, tmp):
    assert sandbox.files.make_dir(str(tmp / "d" / "e")) is True
    assert sandbox.files.make_dir(str(tmp / "d" / "e")) is False
    sandbox.files.write(str(tmp / "d" / "f.txt"), "12345")
    entries = {e.name: e for e in sandbox.files.list(str(tmp / "d"))}
    assert entries["e"].type == FileType.DIR
    assert entries["f.txt"].type == FileType.FILE and entries["f.txt"].size == 5
    deep = sandbox.files.list(str(tmp / "d"), depth=2)
    assert len(deep) == 2
    assert sandbox.files.exists(str(tmp / "d" / "f.txt"))
    assert not sandbox.files.exists(str(tmp / "nope"))
    info = sandbox.files.get_info(str(tmp / "d" / "f.txt"))
    assert info.size == 5 and info.permissions.startswith("-rw")
    moved = sandbox.files.rename(str(tmp / "d" / "f.txt"), str(tmp / "d" / "g.txt"))
    assert moved.name == "g.txt"
    sandbox.files.remove(str(tmp / "d"))
    assert not (tmp / "d").exists()


def test_missing_and_wrong_kind(sandbox, tmp):
    with pytest.raises(NotFoundException):
        sandbox.files.read(str(tmp / "missing"))
    with pytest.raises(NotFoundException):
        sandbox.files.get_info(str(tmp / "missing"))
    with pytest.raises(SandboxException):
        sandbox.files.read(str(tmp))  # a directory
    sandbox.files.write(str(tmp / "file"), "x")
    with pytest.raises(SandboxException):
        sandbox.files.list(str(tmp / "file"))  # not a directory


def test_large_upload(sandbox, tmp):
    data = os.urandom(1 << 20) * 64  # 64 MiB
    p = str(tmp / "big.bin")
    sandbox.files.write(p, data)
    assert os.path.getsize(p) == len(data)
    assert bytes(sandbox.files.read(p, format="bytes")) == data


def test_watch_dir(sandbox, tmp):
    handle = sandbox.files.watch_dir(str(tmp))
    try:
        sandbox.files.write(str(tmp / "watched.txt"), "w")
        deadline = time.time() + 10
        events = []
        while time.time() < deadline:
            events += handle.get_new_events()
            if any(e.name == "watched.txt" for e in events):
                break
            time.sleep(0.05)
        assert any(e.name == "watched.txt" for e in events), events
    finally:
        handle.stop()
