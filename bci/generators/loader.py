"""Turn a generator spec string into a ready :class:`~bci.generators.handle.Generator`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from bci.generators.handle import Generator

SPEC_HELP = '"default", "pggan-mxnet:PATH", "pggan-zoo:PATH" or "dcgan:PATH"'


def _default(_: str) -> torch.nn.Module:
    from bci.generators.default import load_default_module

    return load_default_module()


def _pggan_mxnet(path: str) -> torch.nn.Module:
    from bci.generators.pggan import PGGAN

    return PGGAN.from_mxnet(path)


def _pggan_zoo(path: str) -> torch.nn.Module:
    from bci.generators.gan_zoo import load_gan_zoo

    return load_gan_zoo(path)


def _dcgan(path: str) -> torch.nn.Module:
    from bci.generators.dcgan import DCGAN

    return DCGAN.from_file(path)


_BUILDERS: dict[str, Callable[[str], torch.nn.Module]] = {
    "pggan-mxnet": _pggan_mxnet,
    "pggan-zoo": _pggan_zoo,
    "dcgan": _dcgan,
}


def load(
    spec: str,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    batch_size: int = 32,
) -> Generator:
    """Load a generator from a spec.

    Parameters
    ----------
    spec : str
        ``"default"`` (the face generator shipped with bci), ``"pggan-mxnet:PATH"`` (the HYPER
        PGGAN's MXNet ``generator.params``), ``"pggan-zoo:PATH"`` (a pytorch_GAN_zoo PGAN
        checkpoint) or ``"dcgan:PATH"`` (a DCGAN state dict saved with ``torch.save``).
    device : str | torch.device | None
        ``None`` picks CUDA when present, else the CPU.
    precision : str
        ``"fp32"``, ``"bf16"``, ``"fp16"`` (CUDA) or ``"auto"`` (bfloat16 where the hardware
        computes it natively); see :func:`~bci.generators.device.pick_dtype`.
    batch_size : int
        Largest batch per forward pass.

    Returns
    -------
    Generator
        Exposes ``latent_dim``, ``image_size``, ``sample_latents``, ``render`` and ``module``.
    """
    if not isinstance(spec, str):
        raise TypeError(
            f"generator spec must be a string like {SPEC_HELP}, got {type(spec).__name__}"
        )
    if spec == "default":
        module = _default(spec)
    else:
        kind, sep, path = spec.partition(":")
        if not sep or kind not in _BUILDERS:
            raise ValueError(f"unknown generator spec {spec!r}; expected {SPEC_HELP}")
        if not path:
            raise ValueError(f"generator spec {spec!r} names no file after '{kind}:'")
        if not Path(path).is_file():
            raise FileNotFoundError(f"generator weights file not found: {path}")
        module = _BUILDERS[kind](path)
    return Generator(module, name=spec, device=device, precision=precision, batch_size=batch_size)
