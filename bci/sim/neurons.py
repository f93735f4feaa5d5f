"""In-silico neurons: units whose firing rate is a function of the pixels shown.

Each unit responds to an image through a fixed feature model shared by the population:

1. the uint8 ``(H, W, 3)`` image is scaled to [0, 1] and area-averaged to ``grid x grid``
   pixels (default 16 x 16);
2. the raw descriptor is the RGB values of that small image plus its horizontal and vertical
   grayscale gradients (forward differences of ``0.299 R + 0.587 G + 0.114 B``), ``5 grid²``
   values;
3. a fixed, seeded Gaussian random projection maps it to ``n_features`` values (default 256),
   which are standardised with the mean and standard deviation of each feature over a set of
   reference images (the generator's renders of random latents, in :meth:`from_generator`).

Unit ``u`` has a preferred image with features ``f*_u`` and a tuning width ``w_u``; its rate for
an image with features ``f`` is::

    rate_u = baseline_hz + peak_hz * exp(-d² / (2 w_u²)),   d = ||f - f*_u||

so it peaks (``baseline_hz + peak_hz``) at the preferred image and falls with feature distance.
By default ``w_u = width_scale * median_j ||f(ref_j) - f*_u||``, the typical distance from a
random image to the preferred one, times ``width_scale`` (0.5): a typical random image then
gets ``exp(-1 / (2 · 0.5²)) = exp(-2) ≈ 14 %`` of the peak on top of the baseline, nearer
random images more, farther ones less (a graded, low but non-zero response an optimiser can
climb). Spikes are Poisson with that rate.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["InSilicoPopulation", "InSilicoUnit", "image_descriptor", "spike_train"]

SeedLike = int | np.integer | np.random.Generator | None

_GRAY = np.array([0.299, 0.587, 0.114])


def _check_images(images: object, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    if not isinstance(images, np.ndarray):
        raise ValueError(
            f"images must be a uint8 numpy array (n, H, W, 3), got {type(images).__name__}"
        )
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (n, H, W, 3), got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"images must have shape (n, H, W, 3), got {images.shape}")
    if image_shape is not None and images.shape[1:3] != tuple(image_shape):
        h, w = image_shape
        raise ValueError(
            f"images have shape {images.shape} but these units were built for "
            f"(n, {h}, {w}, 3) images"
        )
    return images


def _area_downsample(x: np.ndarray, grid: int) -> np.ndarray:
    """Average ``(n, H, W, C)`` into ``(n, grid, grid, C)`` blocks (unequal when not divisible)."""
    n, h, w, c = x.shape
    if h % grid == 0 and w % grid == 0:
        return x.reshape(n, grid, h // grid, grid, w // grid, c).mean(axis=(2, 4))
    rows, cols = (np.arange(grid) * h) // grid, (np.arange(grid) * w) // grid
    sums = np.add.reduceat(np.add.reduceat(x, rows, axis=1), cols, axis=2)
    counts = np.outer(np.diff(np.append(rows, h)), np.diff(np.append(cols, w)))
    return sums / counts[None, :, :, None]


def image_descriptor(images: np.ndarray, grid: int = 16) -> np.ndarray:
    """The raw pixel descriptor: small RGB image plus grayscale gradients.

    Parameters
    ----------
    images : np.ndarray, shape (n, H, W, 3), uint8
        Images, ``H, W >= grid``.
    grid : int
        Side of the downsampled image.

    Returns
    -------
    np.ndarray, shape (n, 5 * grid**2), float64
        RGB in [0, 1] (``3 grid²`` values), then the horizontal and vertical forward
        differences of the grayscale image (``grid²`` each, zero in the last column/row).
    """
    images = _check_images(images)
    if min(images.shape[1:3]) < grid:
        raise ValueError(f"images of shape {images.shape} are smaller than the {grid}x{grid} grid")
    small = _area_downsample(images.astype(np.float64) / 255.0, grid)
    gray = small @ _GRAY
    gx = np.zeros_like(gray)
    gy = np.zeros_like(gray)
    gx[:, :, :-1] = gray[:, :, 1:] - gray[:, :, :-1]
    gy[:, :-1, :] = gray[:, 1:, :] - gray[:, :-1, :]
    n = len(images)
    return np.concatenate([small.reshape(n, -1), gx.reshape(n, -1), gy.reshape(n, -1)], axis=1)


def spike_train(
    rate_hz: ArrayLike, duration_s: float, bin_s: float = 0.001, rng: SeedLike = None
) -> np.ndarray:
    """Binned Poisson spike counts at constant rates (1 ms bins by default, for a live stream).

    Parameters
    ----------
    rate_hz : array_like
        Rate of each unit, a scalar or ``(n_units,)``, >= 0.
    duration_s : float
        Length of the train; ``round(duration_s / bin_s)`` bins.
    bin_s : float
        Bin width in seconds.
    rng : int, numpy Generator or None
        Random source.

    Returns
    -------
    np.ndarray, shape (n_bins,) or (n_bins, n_units), int64
        Counts per bin, ``Poisson(rate_hz * bin_s)``; 1-D for a scalar rate.
    """
    rate = np.asarray(rate_hz, dtype=np.float64)
    if rate.ndim > 1 or not np.all(np.isfinite(rate)) or np.any(rate < 0):
        raise ValueError(f"rate_hz must be a scalar or 1-D array of rates >= 0, got {rate!r}")
    if not (np.isfinite(bin_s) and bin_s > 0) or not (np.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"need bin_s > 0 and duration_s >= 0, got {bin_s}, {duration_s}")
    n_bins = int(round(duration_s / bin_s))
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return gen.poisson(rate * bin_s, size=(n_bins, *rate.shape)).astype(np.int64)


class InSilicoPopulation:
    """Units with Gaussian tuning around preferred images in a fixed pixel-feature space.

    See the module docstring for the feature model and the tuning curve.

    Parameters
    ----------
    preferred_images : np.ndarray, shape (n_units, H, W, 3), uint8
        The image each unit prefers.
    reference_images : np.ndarray, shape (m, H, W, 3), uint8, optional
        Typical images (e.g. renders of random latents), ``m >= 2``: they standardise the
        features and set the default widths. Without them the features are not standardised
        and ``width`` must be given.
    baseline_hz : float
        Rate far from the preferred image.
    peak_hz : float
        Rate above baseline at the preferred image.
    width : float or array_like, optional
        Tuning width(s) in feature units, one for all or ``(n_units,)``; default
        ``width_scale`` times each unit's median distance to the reference images.
    width_scale : float
        See ``width``.
    n_features : int
        Dimension of the random projection.
    grid : int
        Side of the downsampled image.
    random_state : int, numpy Generator or None
        Seeds the projection and the default spike noise.
    preferred_latents : array_like, optional
        ``(n_units, latent_dim)`` latents the preferred images were rendered from (kept for
        reference only).
    """

    def __init__(
        self,
        preferred_images: np.ndarray,
        reference_images: np.ndarray | None = None,
        *,
        baseline_hz: float = 2.0,
        peak_hz: float = 50.0,
        width: float | ArrayLike | None = None,
        width_scale: float = 0.5,
        n_features: int = 256,
        grid: int = 16,
        random_state: SeedLike = 0,
        preferred_latents: ArrayLike | None = None,
    ) -> None:
        preferred = _check_images(preferred_images)
        if len(preferred) == 0:
            raise ValueError("need at least one preferred image, got 0")
        if not (np.isfinite(baseline_hz) and baseline_hz >= 0) or not (
            np.isfinite(peak_hz) and peak_hz > 0
        ):
            raise ValueError(f"need baseline_hz >= 0, peak_hz > 0, got {baseline_hz}, {peak_hz}")
        if grid < 1 or n_features < 1:
            raise ValueError(f"need grid >= 1 and n_features >= 1, got {grid}, {n_features}")
        if isinstance(random_state, np.random.Generator):
            rng = random_state
        else:
            rng = np.random.default_rng(random_state)
        self.image_shape: tuple[int, int] = (int(preferred.shape[1]), int(preferred.shape[2]))
        self.grid = int(grid)
        self.n_features = int(n_features)
        self.baseline_hz = float(baseline_hz)
        self.peak_hz = float(peak_hz)
        n_raw = 5 * self.grid**2
        self._projection = rng.standard_normal((n_raw, self.n_features)) / np.sqrt(n_raw)
        self._noise_rng = np.random.default_rng(rng.integers(2**63))
        self._mean = np.zeros(self.n_features)
        self._scale = np.ones(self.n_features)
        ref_features = None
        if reference_images is not None:
            ref = _check_images(reference_images, self.image_shape)
            if len(ref) < 2:
                raise ValueError(f"need at least 2 reference images, got {len(ref)}")
            raw = self._project(ref)
            self._mean = raw.mean(axis=0)
            self._scale = np.maximum(raw.std(axis=0), 1e-12)
            ref_features = (raw - self._mean) / self._scale
        self._preferred_images = preferred.copy()
        self._preferred_features = self.features(preferred)
        self.preferred_latents = (
            None
            if preferred_latents is None
            else np.asarray(preferred_latents, dtype=np.float32).copy()
        )
        n_units = len(preferred)
        if width is None:
            if ref_features is None:
                raise ValueError("width is needed when no reference_images are given")
            if not (np.isfinite(width_scale) and width_scale > 0):
                raise ValueError(f"width_scale must be > 0, got {width_scale}")
            d_ref = self._distances_from_features(ref_features)  # (m, n_units)
            widths = width_scale * np.median(d_ref, axis=0)
        else:
            widths = np.broadcast_to(np.asarray(width, dtype=np.float64), (n_units,)).copy()
        if not np.all(np.isfinite(widths) & (widths > 0)):
            raise ValueError(f"tuning widths must be finite and > 0, got {widths}")
        self.widths: np.ndarray = widths

    @classmethod
    def from_generator(
        cls, gen: object, n_units: int = 1, seed: int = 0, n_reference: int = 256, **kwargs
    ) -> InSilicoPopulation:
        """Units preferring the images a generator renders from random latents.

        Parameters
        ----------
        gen : bci.generators.Generator
            Anything with ``latent_dim`` and ``render(latents) -> uint8 (n, H, W, 3)``.
        n_units : int
            Number of units.
        seed : int
            Seeds the preferred latents, the reference latents and the feature projection.
        n_reference : int
            Random latents rendered to standardise the features and set the widths.
        **kwargs
            Further constructor arguments (``baseline_hz``, ``peak_hz``, ``width_scale``, ...).

        Returns
        -------
        InSilicoPopulation
            With ``preferred_latents`` set to the ``N(0, I)`` latents of the preferred images.
        """
        if n_units < 1 or n_reference < 2:
            raise ValueError(
                f"need n_units >= 1 and n_reference >= 2, got {n_units}, {n_reference}"
            )
        rng = np.random.default_rng(seed)
        dim = int(gen.latent_dim)
        z_pref = rng.standard_normal((n_units, dim)).astype(np.float32)
        z_ref = rng.standard_normal((n_reference, dim)).astype(np.float32)
        return cls(
            gen.render(z_pref),
            gen.render(z_ref),
            random_state=rng,
            preferred_latents=z_pref,
            **kwargs,
        )

    # -- responses ----------------------------------------------------------------------------

    @property
    def n_units(self) -> int:
        """Number of units."""
        return len(self._preferred_images)

    @property
    def preferred_images(self) -> np.ndarray:
        """``(n_units, H, W, 3)`` uint8 preferred images (a copy)."""
        return self._preferred_images.copy()

    def _project(self, images: np.ndarray) -> np.ndarray:
        return image_descriptor(images, self.grid) @ self._projection

    def features(self, images: np.ndarray) -> np.ndarray:
        """Standardised features of images.

        Parameters
        ----------
        images : np.ndarray, shape (n, H, W, 3), uint8

        Returns
        -------
        np.ndarray, shape (n, n_features), float64
        """
        images = _check_images(images, self.image_shape)
        return (self._project(images) - self._mean) / self._scale

    def _distances_from_features(self, f: np.ndarray) -> np.ndarray:
        diff = f[:, None, :] - self._preferred_features[None, :, :]
        return np.sqrt(np.einsum("nuk,nuk->nu", diff, diff))

    def distances(self, images: np.ndarray) -> np.ndarray:
        """Feature distance of each image to each unit's preferred image.

        Parameters
        ----------
        images : np.ndarray, shape (n, H, W, 3), uint8

        Returns
        -------
        np.ndarray, shape (n, n_units), float64
        """
        return self._distances_from_features(self.features(images))

    def rates(self, images: np.ndarray) -> np.ndarray:
        """Noise-free firing rates (deterministic).

        Parameters
        ----------
        images : np.ndarray, shape (n, H, W, 3), uint8

        Returns
        -------
        np.ndarray, shape (n, n_units), float64
            ``baseline_hz + peak_hz * exp(-d² / (2 width²))`` in Hz.
        """
        d = self.distances(images)
        return self.baseline_hz + self.peak_hz * np.exp(-(d**2) / (2.0 * self.widths**2))

    def _rng(self, rng: SeedLike) -> np.random.Generator:
        if rng is None:
            return self._noise_rng
        return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def spike_counts(self, images: np.ndarray, window_s: float, rng: SeedLike = None) -> np.ndarray:
        """Poisson spike counts in a window after each image.

        Parameters
        ----------
        images : np.ndarray, shape (n, H, W, 3), uint8
        window_s : float
            Counting window in seconds (> 0).
        rng : int, numpy Generator or None
            Random source; default the population's own seeded stream.

        Returns
        -------
        np.ndarray, shape (n, n_units), int64
            ``Poisson(rates(images) * window_s)``.
        """
        if not (np.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s must be > 0, got {window_s}")
        lam = self.rates(images) * window_s
        return self._rng(rng).poisson(lam).astype(np.int64)

    def spike_train(
        self, rate_hz: ArrayLike, duration_s: float, bin_s: float = 0.001, rng: SeedLike = None
    ) -> np.ndarray:
        """Binned Poisson counts at constant rates; see :func:`spike_train`.

        Parameters
        ----------
        rate_hz : array_like
            ``(n_units,)`` rates (e.g. a row of :meth:`rates`) or one scalar.
        duration_s : float
            Length in seconds.
        bin_s : float
            Bin width (1 ms default).
        rng : int, numpy Generator or None
            Random source; default the population's own seeded stream.

        Returns
        -------
        np.ndarray, shape (n_bins, n_units) or (n_bins,), int64
        """
        return spike_train(rate_hz, duration_s, bin_s, self._rng(rng))

    def unit(self, index: int) -> InSilicoUnit:
        """One unit of this population as an :class:`InSilicoUnit` (a view).

        Parameters
        ----------
        index : int

        Returns
        -------
        InSilicoUnit
        """
        return InSilicoUnit(self, index)


class InSilicoUnit:
    """A single in-silico unit: 1-D responses of one unit of an :class:`InSilicoPopulation`.

    Parameters
    ----------
    population : InSilicoPopulation
        The population it belongs to (shares its feature model and noise stream).
    index : int
        Which unit.
    """

    def __init__(self, population: InSilicoPopulation, index: int = 0) -> None:
        if isinstance(index, bool) or not 0 <= int(index) < population.n_units:
            raise IndexError(
                f"unit index {index} out of range for a population of {population.n_units}"
            )
        self.population = population
        self.index = int(index)

    @classmethod
    def from_generator(cls, gen: object, seed: int = 0, **kwargs) -> InSilicoUnit:
        """One unit preferring the render of a random latent; see
        :meth:`InSilicoPopulation.from_generator`.

        Parameters
        ----------
        gen : bci.generators.Generator
        seed : int
        **kwargs
            Further :class:`InSilicoPopulation` arguments.

        Returns
        -------
        InSilicoUnit
        """
        return cls(InSilicoPopulation.from_generator(gen, 1, seed, **kwargs), 0)

    @property
    def preferred_image(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 preferred image (a copy)."""
        return self.population._preferred_images[self.index].copy()

    @property
    def preferred_latent(self) -> np.ndarray | None:
        """``(latent_dim,)`` latent of the preferred image, if known."""
        lat = self.population.preferred_latents
        return None if lat is None else lat[self.index].copy()

    @property
    def width(self) -> float:
        """Tuning width in feature units."""
        return float(self.population.widths[self.index])

    @property
    def peak_rate(self) -> float:
        """``baseline_hz + peak_hz``: the rate at the preferred image."""
        return self.population.baseline_hz + self.population.peak_hz

    def rates(self, images: np.ndarray) -> np.ndarray:
        """Noise-free rates, ``(n,)`` Hz; see :meth:`InSilicoPopulation.rates`."""
        d = self.population.distances(images)[:, self.index]
        pop = self.population
        return pop.baseline_hz + pop.peak_hz * np.exp(-(d**2) / (2.0 * self.width**2))

    def spike_counts(self, images: np.ndarray, window_s: float, rng: SeedLike = None) -> np.ndarray:
        """Poisson counts, ``(n,)`` int64; see :meth:`InSilicoPopulation.spike_counts`."""
        if not (np.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s must be > 0, got {window_s}")
        return self.population._rng(rng).poisson(self.rates(images) * window_s).astype(np.int64)

    def spike_train(
        self, rate_hz: float, duration_s: float, bin_s: float = 0.001, rng: SeedLike = None
    ) -> np.ndarray:
        """Binned Poisson counts ``(n_bins,)`` at a constant rate; see :func:`spike_train`."""
        if np.ndim(rate_hz) != 0:
            raise ValueError(
                f"rate_hz must be a scalar for one unit, got shape {np.shape(rate_hz)}"
            )
        return spike_train(rate_hz, duration_s, bin_s, self.population._rng(rng))
