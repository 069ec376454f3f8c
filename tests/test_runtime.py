import subprocess
import sys

import pytest

from cnnlab.runtime import keep_freed_memory

# Training steps after warm-up, counting the page faults a step takes: with glibc's defaults a CPU step maps its
# activation buffers afresh (measured ~700-1,000 minor faults per step at batch 64); kept memory needs almost none.
STEPS_SCRIPT = """
import resource, torch, torch.nn.functional as F
from cnnlab.runtime import keep_freed_memory
from cnnlab.models import SimpleCNN
assert keep_freed_memory()
torch.manual_seed(0)
torch.set_num_threads(1)
model = SimpleCNN().to(memory_format=torch.channels_last)
optimizer = torch.optim.Adam(model.parameters())
x, y = torch.rand(64, 1, 28, 28).contiguous(memory_format=torch.channels_last), torch.randint(0, 10, (64,))
def step():
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
for _ in range(10):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50)
"""


@pytest.mark.slow
@pytest.mark.skipif(not keep_freed_memory(), reason="glibc's mallopt is not available here")
def test_kept_memory_spares_training_steps_their_page_faults():
    out = subprocess.run([sys.executable, "-c", STEPS_SCRIPT], capture_output=True, text=True, check=True)
    assert float(out.stdout.strip()) < 100
