import os
import sys

import pytest

# Tests run on the CPU with few threads: the suite must be fast on a 2-core machine.
# MMVAE_TEST_DEVICE=cuda (benchmarks/gpu_check.sh) keeps the GPU visible and gives the tests that
# ask for the ``device`` fixture that device instead.
TEST_DEVICE = os.environ.get("MMVAE_TEST_DEVICE", "cpu")
if TEST_DEVICE == "cpu":
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device of device-aware tests: MMVAE_TEST_DEVICE (default cpu)."""
    dev = torch.device(TEST_DEVICE)
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.fail("MMVAE_TEST_DEVICE=cuda but torch sees no CUDA device")
    return dev
