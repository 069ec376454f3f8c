import os

import pytest

from cnnlab.atomic import write_text, write_with


def test_atomic_writes_publish_with_normal_permissions(tmp_path):
    path = write_text(tmp_path / "a.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left behind


@pytest.mark.parametrize("error", [RuntimeError("a bug"), OSError(28, "No space left on device")], ids=["bug", "full"])
def test_a_failed_write_keeps_the_previous_file(tmp_path, error):
    path = write_text(tmp_path / "a.txt", "old")

    def crash(tmp):
        tmp.write_text("half")
        raise error

    with pytest.raises(type(error)):
        write_with(path, crash)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
