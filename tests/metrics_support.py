"""Shared fixture of the metric tests: run torch on one CPU thread while a test module runs.

The metric tests use small images (a few thousand to ~60k pixels). With two threads on a busy 2-core machine,
OpenMP's thread start-up and spin-waiting dominated such calls: the 30-row HDR-VDP reference check took 77 s
wall against 6.5 s with one thread, and the MS-SSIM check 10 s against 0.9 s (measured). Results do not depend
on the thread count beyond rounding. Import ``one_torch_thread`` into a test module to use it.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
