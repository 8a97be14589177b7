"""`avatar3d --threads`: one place sizes torch's, OpenMP's, BLAS's, OpenCV's and the worker pools."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from avatar3d import runtime
from avatar3d.cli import main


@pytest.fixture
def restore_threads(monkeypatch):
    """Puts this test process's thread settings back afterwards (set_threads changes them process-wide)."""
    for name in (*runtime._THREAD_VARIABLES, "OMP_WAIT_POLICY"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv2_threads)


def test_set_threads_sizes_torch_opencv_and_the_variables_children_inherit(restore_threads):
    assert runtime.set_threads("1") == 1
    assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    assert all(os.environ[name] == "1" for name in runtime._THREAD_VARIABLES)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert runtime.threads() == 1
    assert runtime.set_threads() == 1  # no count: keeps the one in force (OMP_NUM_THREADS)


def test_threads_default_to_the_usable_cpus_or_omp_num_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert runtime.threads() == runtime.usable_cpus()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # as torchrun sets it (to 1) for each process
    assert runtime.threads() == 3


def test_threads_flag_reaches_torch_loaded_after_it():
    # A fresh process: the variables are set before torch loads, as in every real run.
    result = subprocess.run([sys.executable, "-m", "avatar3d.cli", "--threads", "1", "info"],
                            capture_output=True, text=True, check=True)
    row = next(line for line in result.stdout.splitlines() if "threads" in line)
    assert row.split()[3] == "1", row


@pytest.mark.parametrize("value", ["0", "two", "1.5", "-3"])
def test_bad_threads_is_a_one_line_user_error(value, capsys, restore_threads):
    assert main(["--threads", value, "info"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads" in err and "Traceback" not in err


def test_worker_pool_shares_the_threads_among_its_workers(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert runtime.worker_count(10) == 4 and runtime.worker_count(3) == 3 and runtime.worker_count(10, 6) == 6
    with runtime.worker_pool(2) as pool:  # spawned: the share reaches torch as it loads
        shares = list(pool.map(_thread_settings, range(2)))
    assert shares == [("2", 2, "PASSIVE")] * 2


def test_forked_workers_leave_the_copied_pools_alone(monkeypatch):
    cv2.resize(np.zeros((512, 512), np.float32), (256, 256))  # OpenCV's pool has started
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with runtime.worker_pool(2, "fork") as pool:  # resizing the copied pools hangs or kills a worker
        shares = list(pool.map(_thread_settings, range(2)))
    assert [share[0] for share in shares] == ["1", "1"]  # for what the worker starts


def _thread_settings(_):
    import torch  # loaded in the worker, after its initializer

    cv2.resize(np.zeros((512, 512), np.float32), (256, 256))
    return os.environ["OMP_NUM_THREADS"], torch.get_num_threads(), os.environ["OMP_WAIT_POLICY"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_memory_is_reused_without_new_page_faults():
    """Ten rounds of six 16 MB buffers held at once, then freed (a frame's tensors): under
    glibc's defaults the rounds fault pages in afresh (a seventh of them here), almost none once
    the process keeps what it frees."""
    script = """
import resource, sys
import numpy as np
from avatar3d import runtime
if sys.argv[1] == "keep":
    runtime.keep_freed_memory()
def round():
    buffers = [np.ones(4 * 2**20, np.float32) for _ in range(6)]
round()  # the first round faults either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    round()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    faults = {how: int(subprocess.run([sys.executable, "-c", script, how], capture_output=True, text=True,
                                      check=True).stdout) for how in ("default", "keep")}
    pages = 10 * 6 * 16 * 2**20 // 4096
    assert faults["default"] > 0.05 * pages and faults["keep"] < 0.05 * faults["default"], faults
