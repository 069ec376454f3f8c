import json
import subprocess
import sys

import pytest

from cnnlab.runtime import keep_freed_memory

# What glibc's malloc does with a 16 MiB block (the size of a training step's larger activation buffers), read from its
# own bookkeeping (mallinfo2): bytes in mmapped blocks while it is held, and heap (arena) bytes while held and after
# free. A fresh process, so that the first block meets glibc's defaults before keep_freed_memory() changes them.
BLOCKS_SCRIPT = """
import ctypes
from cnnlab.runtime import keep_freed_memory

class MallInfo2(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def block():
    before = libc.mallinfo2()
    pointer = libc.malloc(16 << 20)
    held = libc.mallinfo2()
    libc.free(pointer)
    freed = libc.mallinfo2()
    return [held.hblkhd - before.hblkhd, held.arena - before.arena, freed.arena - before.arena]

print(block())
assert keep_freed_memory()
print(block())
print(block())
"""
MIB16 = 16 << 20


@pytest.mark.slow
@pytest.mark.skipif(not keep_freed_memory(), reason="glibc's mallopt is not available here")
def test_kept_memory_serves_large_blocks_from_the_heap_and_keeps_them_after_free():
    out = subprocess.run([sys.executable, "-c", BLOCKS_SCRIPT], capture_output=True, text=True, check=True)
    default, kept, again = (json.loads(line) for line in out.stdout.splitlines())
    assert default[0] >= MIB16 and default[1:] == [0, 0]  # glibc's default: mapped on malloc, unmapped on free
    # from the heap, which keeps it after free; the heap grows by the block less whatever free space it already had
    assert kept[0] == 0 and kept[1] >= MIB16 - (1 << 20) and kept[2] == kept[1]
    assert again == [0, 0, 0]  # the next block of that size reuses the kept memory: no new mapping, no growth
