"""The HYPER progressive-growing GAN generator (Karras et al. 2018), as the seed notebook builds it.

Layer for layer (seed ``000``, MXNet ``Generator``)::

    pixel-norm(z) -> Dense(latent_dim -> 16*C0, no bias) -> reshape (C0, 4, 4) -> + bias
    -> LeakyReLU(0.2) -> pixel-norm -> [3x3 conv C0, LeakyReLU, pixel-norm]          = layer 0
    -> per block: nearest x2 upsample, 2 x [3x3 conv, LeakyReLU, pixel-norm]       = layer k
    -> 1x1 conv to RGB (no tanh, no clamp)                                          = layer n+1

Weights load from the notebook's MXNet ``generator.params`` (:meth:`PGGAN.from_mxnet`) and from
pytorch_GAN_zoo PGAN checkpoints (:func:`bci.generators.gan_zoo.load_gan_zoo`, built on this one).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bci.generators.mxnet_params import read_params, write_params

DEFAULT_CHANNELS = (512, 512, 512, 512, 256, 128, 64, 32, 16)  # C0, then the 8 blocks
_EPS = 1e-8


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """Normalise each pixel's feature vector: ``x / sqrt(mean(x**2, channels) + 1e-8)``."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + _EPS)


def checked_tensor(tensors: Mapping[str, Any], key: str, shape: Sequence[int], source: str) -> Any:
    """Return ``tensors[key]`` after checking that it exists and has ``shape``.

    Parameters
    ----------
    tensors : Mapping[str, array-like]
        Tensors by name, as read from a weights file.
    key : str
        Name of the tensor in the file.
    shape : Sequence[int]
        Expected shape.
    source : str
        The file, named in error messages.

    Returns
    -------
    array-like
        The tensor.

    Raises
    ------
    ValueError
        ``"<source>: missing tensor '<key>'"`` or
        ``"<source>: tensor '<key>' has shape (...), expected (...)"``.
    """
    if key not in tensors:
        raise ValueError(f"{source}: missing tensor {key!r}")
    found = tuple(int(d) for d in tensors[key].shape)
    if found != tuple(shape):
        raise ValueError(f"{source}: tensor {key!r} has shape {found}, expected {tuple(shape)}")
    return tensors[key]


def checked_dense_weight(tensors: Mapping[str, Any], key: str, source: str) -> Any:
    """Return the latent-to-4x4 weight ``tensors[key]``, checked to be ``(16 * C0, latent_dim)``.

    Raises
    ------
    ValueError
        Missing, or not a 2-D shape with a first dimension divisible by 16.
    """
    if key not in tensors:
        raise ValueError(f"{source}: missing tensor {key!r}")
    dense = tensors[key]
    if dense.ndim != 2 or dense.shape[0] % 16 or 0 in tuple(dense.shape):
        raise ValueError(
            f"{source}: tensor {key!r} has shape {tuple(int(d) for d in dense.shape)}, "
            "expected (16 * C0, latent_dim)"
        )
    return dense


class _Block(nn.Module):
    """Nearest-neighbour x2 upsample, then twice [3x3 conv, LeakyReLU, pixel-norm]."""

    def __init__(self, in_channels: int, channels: int, negative_slope: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = pixel_norm(F.leaky_relu(self.conv1(x), self.negative_slope))
        return pixel_norm(F.leaky_relu(self.conv2(x), self.negative_slope))


class PGGAN(nn.Module):
    """PGGAN generator: ``(n, latent_dim)`` latents to ``(n, 3, S, S)`` images, S = 4 * 2**blocks.

    Parameters
    ----------
    latent_dim : int
        Width of the latent vector (512 in HYPER).
    channels : Sequence[int]
        Feature channels of the 4x4 stage, then of each upsampling block. The default is the
        seed's 1024x1024 generator (8 blocks).
    negative_slope : float
        LeakyReLU slope (0.2 in the seed and in pytorch_GAN_zoo).
    tanh : bool
        Apply ``tanh`` to the RGB output. Off for the seed; on for pytorch_GAN_zoo checkpoints
        trained with the DCGAN or MSE loss, whose generator ends in ``tanh``.

    Attributes
    ----------
    latent_dim : int
    image_size : int
    n_blocks : int
        Number of upsampling blocks; ``forward(z, layer=n_blocks + 1)`` is the RGB image.
    """

    def __init__(
        self,
        latent_dim: int = 512,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        negative_slope: float = 0.2,
        tanh: bool = False,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1 or latent_dim < 1:
            raise ValueError(f"need latent_dim, channels >= 1, got {latent_dim}, {channels}")
        self.latent_dim = int(latent_dim)
        self.channels = channels
        self.n_blocks = len(channels) - 1
        self.image_size = 4 * 2**self.n_blocks
        self.negative_slope = float(negative_slope)
        self.tanh = bool(tanh)
        c0 = channels[0]
        self.dense = nn.Linear(self.latent_dim, 16 * c0, bias=False)
        self.bias = nn.Parameter(torch.zeros(c0, 4, 4))
        self.conv0 = nn.Conv2d(c0, c0, 3, padding=1)
        self.blocks = nn.ModuleList(
            _Block(c_in, c_out, self.negative_slope)
            for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
        )
        self.to_rgb = nn.Conv2d(channels[-1], 3, 1)

    def forward(self, z: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """Render latents, or stop at an intermediate layer.

        Parameters
        ----------
        z : torch.Tensor, shape (n, latent_dim)
            Latents.
        layer : int | None
            0 = the 4x4 features after the first conv, k = after block k, ``n_blocks + 1``
            (9 for the default net, also what ``None`` means) = the RGB image.

        Returns
        -------
        torch.Tensor
            ``(n, C, H, W)`` features, or ``(n, 3, image_size, image_size)`` in nominal [-1, 1].
        """
        last = self.n_blocks + 1
        asked, layer = layer, last if layer is None else layer
        try:
            layer = operator.index(layer)
        except TypeError:
            layer = -1
        if not 0 <= layer <= last:
            raise ValueError(f"layer must be an int in 0..{last} ({last} = image), got {asked!r}")
        if z.ndim != 2:
            raise ValueError(
                f"latents must have shape (n, {self.latent_dim}), got {tuple(z.shape)}"
            )
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"latents have width {z.shape[1]}, expected {self.latent_dim}")
        slope = self.negative_slope
        x = self.dense(pixel_norm(z)).view(-1, self.channels[0], 4, 4) + self.bias
        x = pixel_norm(F.leaky_relu(x, slope))
        x = pixel_norm(F.leaky_relu(self.conv0(x), slope))
        for k, block in enumerate(self.blocks, start=1):
            if layer < k:
                return x
            x = block(x)
        if layer == self.n_blocks:
            return x
        x = self.to_rgb(x)
        return torch.tanh(x) if self.tanh else x

    @classmethod
    def from_tensors(
        cls,
        tensors: Mapping[str, Any],
        names: Mapping[str, str],
        source: str,
        bias_layout: str = "channel",
        scales: Mapping[str, float] | None = None,
        **config: Any,
    ) -> PGGAN:
        """Build a PGGAN from tensors stored under foreign names.

        Parameters
        ----------
        tensors : Mapping[str, array-like]
            Tensors (numpy arrays or torch tensors) by their name in the file.
        names : Mapping[str, str]
            For every key of this module's ``state_dict``, the tensor's name in ``tensors``.
        source : str
            The file, named in error messages.
        bias_layout : {"channel", "element"}
            The 4x4 bias is stored per channel ``(C0,)`` (MXNet ``Bias``) or per element
            ``(16 * C0,)`` (a linear layer's bias).
        scales : Mapping[str, float] | None
            Factors to multiply into tensors by module key (equalized learning rate).
        **config
            Constructor arguments (``latent_dim``, ``channels``, ...).

        Returns
        -------
        PGGAN
        """
        if bias_layout not in ("channel", "element"):
            raise ValueError(f"bias_layout must be 'channel' or 'element', got {bias_layout!r}")
        with torch.device("meta"):
            model = cls(**config)
        c0 = model.channels[0]
        state = {}
        for key, meta in model.state_dict().items():
            shape = tuple(meta.shape)
            if key == "bias":
                shape = (c0,) if bias_layout == "channel" else (16 * c0,)
            value = torch.as_tensor(checked_tensor(tensors, names[key], shape, source))
            value = value.detach().to("cpu", torch.float32) * float((scales or {}).get(key, 1.0))
            if key == "bias" and bias_layout == "channel":
                value = value[:, None, None].expand(c0, 4, 4)
            elif key == "bias":
                value = value.view(c0, 4, 4)
            state[key] = value.contiguous().clone()
        model.load_state_dict(state, assign=True)
        return model

    @classmethod
    def from_mxnet(cls, path: str | PathLike[str]) -> PGGAN:
        """Load the seed notebook's MXNet ``generator.params``.

        Accepts gluon ``save_parameters`` names (``1.weight``, ``2.b``, ``8.0.weight``, ...) and
        the older prefixed ``save_params`` names (``generator0_dense0_weight``, ...). Latent
        width and channels are read off the file, so smaller generators load too.

        Parameters
        ----------
        path : str | PathLike
            The ``.params`` file.

        Returns
        -------
        PGGAN

        Raises
        ------
        ValueError
            The file is not MXNet params, or a tensor is missing or mis-shaped.
        """
        source = str(path)
        tensors = read_params(path)
        style, prefix = _detect_style(tensors)
        dense_key = "1.weight" if style == "index" else f"{prefix}dense0_weight"
        dense = checked_dense_weight(tensors, dense_key, source)
        channels = [dense.shape[0] // 16]
        while _mx_block_key(style, prefix, len(channels) - 1) in tensors:
            block = tensors[_mx_block_key(style, prefix, len(channels) - 1)]
            channels.append(int(block.shape[0]) if block.ndim else 1)
        names = _mxnet_names(style, prefix, len(channels) - 1)
        return cls.from_tensors(
            tensors, names, source, "channel", latent_dim=dense.shape[1], channels=channels
        )

    def to_mxnet(self, path: str | PathLike[str], style: str = "index") -> None:
        """Save the weights as the seed notebook's MXNet ``generator.params``.

        Parameters
        ----------
        path : str | PathLike
            Destination file.
        style : {"index", "prefixed"}
            gluon ``save_parameters`` names (``1.weight``, ...) or ``save_params`` names
            (``generator0_dense0_weight``, ...).

        Raises
        ------
        ValueError
            The module uses options the notebook's MXNet generator cannot express.
        """
        if style not in ("index", "prefixed"):
            raise ValueError(f"style must be 'index' or 'prefixed', got {style!r}")
        if self.tanh or self.negative_slope != 0.2:
            raise ValueError("the MXNet generator has LeakyReLU 0.2 and no tanh; cannot export")
        state = {k: v.detach().to("cpu", torch.float32) for k, v in self.state_dict().items()}
        bias = state["bias"]
        if not torch.equal(bias, bias[:, :1, :1].expand_as(bias)):
            raise ValueError("the 4x4 bias varies over space; MXNet's Bias stores one per channel")
        state["bias"] = bias[:, 0, 0]
        prefix = "generator0_" if style == "prefixed" else ""
        names = _mxnet_names(style, prefix, self.n_blocks)
        write_params(path, {names[k]: state[k].numpy() for k in names})


def _detect_style(tensors: Mapping[str, Any]) -> tuple[str, str]:
    """``("prefixed", "generator0_")`` for ``save_params`` names, else ``("index", "")``."""
    for key in tensors:
        if key.endswith("dense0_weight"):
            return "prefixed", key[: -len("dense0_weight")]
    return "index", ""


def _mx_block_key(style: str, prefix: str, i: int) -> str:
    """Name of block ``i``'s first conv weight."""
    return f"{8 + i}.0.weight" if style == "index" else f"{prefix}block{i}_conv0_weight"


def _mxnet_names(style: str, prefix: str, n_blocks: int) -> dict[str, str]:
    """Map this module's state-dict keys to the notebook's MXNet parameter names.

    Index style follows the gluon ``HybridSequential`` children: 0 Pixelnorm, 1 Dense, 2 Bias,
    3 LeakyReLU, 4 Pixelnorm, 5 Conv, 6 LeakyReLU, 7 Pixelnorm, 8.. blocks (inside: 0 conv,
    1 LeakyReLU, 2 Pixelnorm, 3 conv, ...), then the final 1x1 conv.
    """
    names: dict[str, str] = {}
    if style == "index":
        names.update({"dense.weight": "1.weight", "bias": "2.b"})
        names.update({"conv0.weight": "5.weight", "conv0.bias": "5.bias"})
        for i in range(n_blocks):
            for conv, child in (("conv1", 0), ("conv2", 3)):
                for p in ("weight", "bias"):
                    names[f"blocks.{i}.{conv}.{p}"] = f"{8 + i}.{child}.{p}"
        final = f"{8 + n_blocks}."
    else:
        names.update({"dense.weight": f"{prefix}dense0_weight", "bias": f"{prefix}bias0_b"})
        names.update({"conv0.weight": f"{prefix}conv0_weight", "conv0.bias": f"{prefix}conv0_bias"})
        for i in range(n_blocks):
            for conv, child in (("conv1", 0), ("conv2", 1)):
                for p in ("weight", "bias"):
                    names[f"blocks.{i}.{conv}.{p}"] = f"{prefix}block{i}_conv{child}_{p}"
        final = f"{prefix}conv1_"
    names.update({"to_rgb.weight": final + "weight", "to_rgb.bias": final + "bias"})
    return names
