"""Choose the torch device a generator runs on."""

from __future__ import annotations

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """Return the device to run on: the one asked for, else CUDA when present, else CPU.

    Parameters
    ----------
    device : str | torch.device | None
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a torch.device, or ``None`` to choose.

    Returns
    -------
    torch.device
        The chosen device.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} was asked for but torch sees no CUDA device")
    return device


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), as oneDNN reports it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype a generator runs in on ``device`` for ``precision``.

    Parameters
    ----------
    precision : str
        ``"fp32"``; ``"bf16"``; ``"fp16"`` (CUDA only); or ``"auto"``: bfloat16 on CUDA and on
        CPUs that compute it natively (a small generator renders about twice as fast there,
        images within a few grey levels of float32), float32 elsewhere.
    device : torch.device
        Where the generator runs.

    Returns
    -------
    torch.dtype
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"unknown precision {precision!r}; expected one of {', '.join(map(repr, PRECISIONS))}"
        )
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("precision 'fp16' runs on CUDA only; use 'bf16' on the CPU")
        return torch.float16
    if precision == "auto":
        fast = device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())
        return torch.bfloat16 if fast else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32
