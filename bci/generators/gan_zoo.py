"""Load facebookresearch/pytorch_GAN_zoo PGAN checkpoints into :class:`~bci.generators.pggan.PGGAN`.

A checkpoint is ``torch.save({'config': ..., 'netG': ..., 'netD': ..., 'avgG': ...})``; the
moving-average generator ``avgG`` is preferred when present. Its ``GNet``
(models/networks/progressive_conv_net.py) names its layers ``formatLayer`` (linear, latent ->
16 * C0), ``groupScale0.0`` (3x3 conv), ``scaleLayers.i.{0,1}`` (the two 3x3 convs of block i) and
``toRGBLayers.i`` (1x1 convs; only the last is used, i.e. the blending factor alpha is taken as 0).

Each layer is an equalized-learning-rate ``ConstrainedLayer`` around ``.module`` (custom_layers.py):
it returns ``module(x) * sqrt(2 / fan_in)`` with ``fan_in = prod(weight.shape[1:])``, so the factor
scales weight *and* bias; both are folded into the plain PGGAN weights here.

GNet.forward is ``pixel-norm(z) -> leaky(formatLayer(z)) -> view (C0, 4, 4) -> pixel-norm ->
[leaky(conv), pixel-norm] ...``. Its format layer carries a per-element bias before the
(element-wise) LeakyReLU, so this equals the seed's ``Dense -> reshape -> + bias -> LeakyReLU``
with the bias stored as ``(C0, 4, 4)``; upsampling (``Upscale2d``) is nearest-neighbour x2 in both.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from os import PathLike
from typing import Any

import torch

from bci.generators.pggan import PGGAN, checked_dense_weight

_TANH_LOSSES = ("MSE", "DCGAN")  # base_loss_criterions: these set generationActivation = tanh
_UNSAFE = re.compile(r"Unsupported global: GLOBAL (\S+) was not an allowed global")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _torch_load(path: str) -> Any:
    """``torch.load(weights_only=True)``, allowing only the zoo's plain ``BaseConfig`` objects.

    The zoo pickles its config as ``models.utils.config.BaseConfig``; a stand-in class with that
    name receives the attributes (no zoo code is imported or run).
    """
    allowed: list[type] = []
    for _ in range(8):
        try:
            with torch.serialization.safe_globals(allowed):
                return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            match = _UNSAFE.search(str(err))
            if match is None:
                raise ValueError(f"{path} is not a torch checkpoint ({_first_line(err)})") from None
            module, _, name = match.group(1).rpartition(".")
            if name != "BaseConfig":
                raise ValueError(
                    f"{path}: checkpoint pickles {match.group(1)}, which is not loaded for safety"
                ) from None
            allowed.append(type(name, (), {"__module__": module}))
    raise ValueError(f"{path}: checkpoint pickles too many config classes")


def read_checkpoint(path: str | PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a pytorch_GAN_zoo checkpoint's generator weights and config.

    Parameters
    ----------
    path : str | PathLike
        The ``.pth`` / ``.pt`` file written by the zoo's ``BaseGAN.save``.

    Returns
    -------
    state : dict[str, torch.Tensor]
        The ``avgG`` state dict if present, else ``netG``, with leading ``module.`` removed.
    config : dict[str, Any]
        The checkpoint's config (empty when absent).

    Raises
    ------
    ValueError
        Not a torch checkpoint, or no ``netG`` / ``avgG`` state dict in it.
    """
    payload = _torch_load(str(path))
    if not isinstance(payload, Mapping) or not ({"netG", "avgG"} & set(payload)):
        raise ValueError(f"{path} is not a pytorch_GAN_zoo checkpoint (no 'netG' or 'avgG')")
    state = payload["avgG"] if "avgG" in payload else payload["netG"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: the generator state is a {type(state).__name__}, not a dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    config = payload.get("config") or {}
    config = dict(config) if isinstance(config, Mapping) else dict(vars(config))
    return state, config


def zoo_names(n_blocks: int) -> dict[str, str]:
    """Map :class:`PGGAN` state-dict keys to GNet's state-dict keys."""
    names = {"dense.weight": "formatLayer.module.weight", "bias": "formatLayer.module.bias"}
    names["conv0.weight"] = "groupScale0.0.module.weight"
    names["conv0.bias"] = "groupScale0.0.module.bias"
    for i in range(n_blocks):
        for conv, child in (("conv1", 0), ("conv2", 1)):
            for p in ("weight", "bias"):
                names[f"blocks.{i}.{conv}.{p}"] = f"scaleLayers.{i}.{child}.module.{p}"
    for p in ("weight", "bias"):
        names[f"to_rgb.{p}"] = f"toRGBLayers.{n_blocks}.module.{p}"
    return names


def he_scales(latent_dim: int, channels: tuple[int, ...]) -> dict[str, float]:
    """The equalized-learning-rate factor ``sqrt(2 / fan_in)`` per PGGAN state-dict key."""
    fan_in = {"dense": latent_dim, "conv0": channels[0] * 9, "to_rgb": channels[-1]}
    for i, c_in in enumerate(channels[:-1]):
        fan_in[f"blocks.{i}.conv1"] = c_in * 9
        fan_in[f"blocks.{i}.conv2"] = channels[i + 1] * 9
    scales = {}
    for layer, n in fan_in.items():
        scales[f"{layer}.weight"] = math.sqrt(2.0 / n)
        # the format layer's bias is PGGAN's 4x4 ``bias``
        scales["bias" if layer == "dense" else f"{layer}.bias"] = math.sqrt(2.0 / n)
    return scales


def load_gan_zoo(path: str | PathLike[str]) -> PGGAN:
    """Load a pytorch_GAN_zoo PGAN checkpoint as a :class:`PGGAN`.

    Parameters
    ----------
    path : str | PathLike
        The checkpoint.

    Returns
    -------
    PGGAN
        Equalized-lr factors folded into the weights; ``tanh`` output when the checkpoint's loss
        (``MSE`` or ``DCGAN``) gave the zoo generator a tanh.

    Raises
    ------
    ValueError
        Not a checkpoint, a tensor is missing or mis-shaped, or the config asks for something the
        zoo's own GNet cannot run (no pixel normalisation).
    """
    source = str(path)
    state, config = read_checkpoint(path)
    if config.get("perChannelNormalization", True) is False:
        raise ValueError(
            f"{source}: perChannelNormalization=False is not supported "
            "(the zoo's own GNet.forward needs the normalization layer)"
        )
    if config.get("alpha", 0):
        warnings.warn(
            f"{source}: alpha={config['alpha']} ignored; rendering the last scale only",
            stacklevel=2,
        )
    dense = checked_dense_weight(state, "formatLayer.module.weight", source)
    channels = [dense.shape[0] // 16]
    while (block := state.get(f"scaleLayers.{len(channels) - 1}.0.module.weight")) is not None:
        channels.append(int(block.shape[0]) if block.ndim else 1)
    latent_dim, channels_t = int(dense.shape[1]), tuple(int(c) for c in channels)
    equalized = config.get("equalizedlR", True)
    return PGGAN.from_tensors(
        state,
        zoo_names(len(channels_t) - 1),
        source,
        bias_layout="element",
        scales=he_scales(latent_dim, channels_t) if equalized else None,
        latent_dim=latent_dim,
        channels=channels_t,
        negative_slope=float(config.get("leakyReluLeak", 0.2)),
        tanh=config.get("lossCriterion") in _TANH_LOSSES,
    )
