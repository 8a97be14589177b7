"""Which kernel backends the twin tests run on here: ``cpu`` wherever the kernels build (CI
builds them), ``cuda`` where a GPU is and they build for it; the rest skip."""

import pytest

from cuda_ext import build


def _kernel_devices():
    devices = [pytest.param("cpu", id="cpu")]
    reason = build.cuda_failure(built=False)
    devices.append(pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(reason is not None, reason=str(reason))))
    return devices


KERNEL_DEVICES = _kernel_devices()


@pytest.fixture(params=KERNEL_DEVICES)
def device(request):
    """A device whose kernels must build; the test fails, with the reason, if they do not."""
    assert build.extension() is not None, build.failure()
    if request.param == "cuda":
        assert build.cuda_failure() is None, build.cuda_failure()
    return request.param
