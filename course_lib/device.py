"""Pick the device that tensors and models live on.

Every chapter and script calls `get_device()` instead of writing "cuda" by hand, so the same
code runs on an NVIDIA GPU, on an Apple-silicon GPU, or on a plain CPU:

    >>> get_device("cpu")
    device(type='cpu')
    >>> get_device()          # on a laptop without a GPU
    device(type='cpu')

Order of preference when nothing is asked for: cuda, then mps, then cpu. An explicit argument
wins over the environment variable COURSE_LIB_DEVICE, which wins over that order.
"""

from __future__ import annotations

import os

import torch

DEVICE_ENV = "COURSE_LIB_DEVICE"


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Return the torch.device to use: `device` if given, else $COURSE_LIB_DEVICE, else the best one.

    Asking for a device this machine does not have raises a RuntimeError that says what is
    available, rather than failing later with an obscure CUDA error.
    """
    requested = device if device is not None else os.environ.get(DEVICE_ENV) or None
    if requested is None:
        return _best_available()
    try:
        chosen = torch.device(requested)
    except RuntimeError as err:
        raise ValueError(
            f"unknown device {requested!r}: use 'cpu', 'cuda', 'cuda:1' or 'mps'"
            f" (as an argument or in ${DEVICE_ENV})"
        ) from err
    _require_available(chosen)
    return chosen


def _best_available() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _require_available(device: torch.device) -> None:
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = device.index or 0
        if index >= count:
            raise RuntimeError(
                f"device {str(device)!r} was asked for but this machine has {count} CUDA GPU(s);"
                f" use get_device() without an argument (and unset ${DEVICE_ENV}) to pick the best one"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(
            "device 'mps' was asked for but Apple's Metal backend is not available here;"
            f" use 'cpu' or unset ${DEVICE_ENV}"
        )
