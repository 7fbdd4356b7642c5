"""Plugin tests train real (tiny) networks: run torch on one thread. With two threads on a busy
2-core machine, OpenMP barriers made small convolutions ~20x slower (measured 29 s vs 1.5 s)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
