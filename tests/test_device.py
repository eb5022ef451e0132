"""course_lib.device.get_device: cuda, then mps, then cpu; an argument or $COURSE_LIB_DEVICE overrides."""

import pytest
import torch

from course_lib.device import DEVICE_ENV, get_device


@pytest.fixture
def machine(monkeypatch):
    """Pretend the machine has the accelerators we say, whatever this one really has."""
    monkeypatch.delenv(DEVICE_ENV, raising=False)

    def set_machine(cuda: int = 0, mps: bool = False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return set_machine


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(0, False, "cpu"), (0, True, "mps"), (1, False, "cuda"), (2, True, "cuda")],
)
def test_preference_order(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert get_device() == torch.device(expected)


def test_argument_overrides_environment_and_preference(machine, monkeypatch):
    machine(cuda=1)
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")


def test_environment_overrides_preference(machine, monkeypatch):
    machine(cuda=1, mps=True)
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert get_device() == torch.device("cpu")


def test_empty_environment_variable_means_unset(machine, monkeypatch):
    machine(mps=True)
    monkeypatch.setenv(DEVICE_ENV, "")
    assert get_device() == torch.device("mps")


def test_missing_cuda_is_a_clear_error(machine):
    machine(cuda=1)
    with pytest.raises(RuntimeError, match=r"'cuda:1'.*1 CUDA GPU"):
        get_device("cuda:1")
    machine(cuda=0)
    with pytest.raises(RuntimeError, match="0 CUDA GPU"):
        get_device("cuda")


def test_missing_mps_is_a_clear_error(machine):
    machine(mps=False)
    with pytest.raises(RuntimeError, match="mps"):
        get_device("mps")


def test_unknown_device_name(machine, monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "gpu")
    with pytest.raises(ValueError, match=r"unknown device 'gpu'.*COURSE_LIB_DEVICE"):
        get_device()
