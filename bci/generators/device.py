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
