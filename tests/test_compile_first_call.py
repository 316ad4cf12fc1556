"""torch.compile(fullgraph=True) works when the compiled call is the process's first use of the
library: the backend table must not query the dispatcher while dynamo traces."""
import subprocess
import sys

import pytest

CODE = """
import torch, zerofwht
x = torch.randn(4, 100, dtype=torch.float64)
f = torch.compile(lambda t: zerofwht.fwht(t, norm="ortho"), fullgraph=True, backend="aot_eager")
y = f(x)
H = zerofwht.reference.hadamard_matrix(128).to(x) / 128 ** 0.5
torch.testing.assert_close(y, torch.nn.functional.pad(x, (0, 28)) @ H)
print("ok")
"""


@pytest.mark.parametrize("backend", [None, "cpp", "torch"])
def test_compile_as_first_call(backend):
    env_code = CODE if backend is None else CODE.replace('norm="ortho")', f'norm="ortho", backend="{backend}")')
    res = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]
