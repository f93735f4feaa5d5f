"""In-silico neurons: tuning around a preferred image, Poisson spiking, input validation."""

from __future__ import annotations

import numpy as np
import pytest

from bci.sim import InSilicoPopulation, InSilicoUnit
from bci.sim.neurons import image_descriptor, spike_train


def smooth_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """Random smooth colour images: a few random sinusoidal blobs per channel."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3))
    for i in range(n):
        for c in range(3):
            fx, fy, px, py = rng.uniform(0.5, 3.0, 2).tolist() + rng.uniform(0, 6.3, 2).tolist()
            out[i, :, :, c] = 0.5 + 0.4 * np.sin(2 * np.pi * fx * xx + px) * np.cos(
                2 * np.pi * fy * yy + py
            )
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def pop():
    images = smooth_images(203, seed=1)
    return InSilicoPopulation(images[:3], images[3:], random_state=0)


@pytest.fixture(scope="module")
def probes():
    return smooth_images(300, seed=2)


def test_rate_is_maximal_at_the_preferred_image(pop, probes):
    at_pref = pop.rates(pop.preferred_images)
    peak = pop.baseline_hz + pop.peak_hz
    np.testing.assert_allclose(np.diag(at_pref), peak, rtol=1e-12)
    assert np.all(pop.rates(probes) < peak)
    assert np.all(pop.rates(probes) > pop.baseline_hz)


def test_rate_falls_with_distance_along_a_blend(pop, probes):
    pref = pop.preferred_images[0].astype(np.float64)
    other = probes[0].astype(np.float64)
    alphas = np.linspace(0.0, 1.0, 9)
    blends = np.stack([(1 - a) * pref + a * other for a in alphas])
    blends = np.clip(np.rint(blends), 0, 255).astype(np.uint8)
    d = pop.distances(blends)[:, 0]
    r = pop.rates(blends)[:, 0]
    assert d[0] < 1e-9 and np.all(np.diff(d) > 0)
    assert np.all(np.diff(r) < 0)
    # the tuning curve itself: baseline + peak * exp(-d^2 / (2 w^2))
    w = pop.widths[0]
    np.testing.assert_allclose(r, pop.baseline_hz + pop.peak_hz * np.exp(-(d**2) / (2 * w**2)))


def test_default_width_is_half_the_median_reference_distance():
    images = smooth_images(103, seed=4)
    p = InSilicoPopulation(images[:3], images[3:], width_scale=0.5, random_state=3)
    np.testing.assert_allclose(p.widths, 0.5 * np.median(p.distances(images[3:]), axis=0))
    fixed = InSilicoPopulation(images[:3], images[3:], width=[1.0, 2.0, 3.0], random_state=3)
    np.testing.assert_array_equal(fixed.widths, [1.0, 2.0, 3.0])


def test_rates_are_deterministic_and_seeded(probes):
    images = smooth_images(53, seed=5)
    a = InSilicoPopulation(images[:2], images[2:], random_state=7)
    b = InSilicoPopulation(images[:2], images[2:], random_state=7)
    c = InSilicoPopulation(images[:2], images[2:], random_state=8)
    np.testing.assert_array_equal(a.rates(probes), a.rates(probes))
    np.testing.assert_array_equal(a.rates(probes), b.rates(probes))
    assert not np.allclose(a.rates(probes), c.rates(probes))


def test_descriptor_hand_worked():
    # a 2x2 grid of a 4x4 image: each cell the mean of a 2x2 block; gray = 0.299 R + ...
    img = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    img[0, :2, 2:, 0] = 255  # top-right block red
    d = image_descriptor(img, grid=2)
    rgb = d[0, :12].reshape(2, 2, 3)
    np.testing.assert_allclose(rgb[:, :, 0], [[0.0, 1.0], [0.0, 0.0]])
    gx, gy = d[0, 12:16].reshape(2, 2), d[0, 16:20].reshape(2, 2)
    np.testing.assert_allclose(gx, [[0.299, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(gy, [[0.0, -0.299], [0.0, 0.0]])


def test_descriptor_unequal_blocks():
    # 5 px into a grid of 2: block edges at 0 and 5 * 1 // 2 = 2, so rows/cols [0:2] and [2:5]
    img = np.random.default_rng(0).integers(0, 256, (1, 5, 5, 3)).astype(np.uint8)
    x = img[0].astype(np.float64) / 255.0
    blocks = [[x[:2, :2], x[:2, 2:]], [x[2:, :2], x[2:, 2:]]]
    expected = np.array([[b.mean(axis=(0, 1)) for b in row] for row in blocks])
    np.testing.assert_allclose(image_descriptor(img, grid=2)[0, :12], expected.ravel())


def test_poisson_counts_mean_and_variance(pop):
    # one probe image repeated: counts ~ Poisson(lam). With N draws the sample mean has s.e.
    # sqrt(lam / N) and the sample variance s.e. sqrt((lam + 2 lam^2) / N) (Poisson's fourth
    # central moment is lam + 3 lam^2); 5 s.e. makes a false failure a < 1e-6 event, and a
    # seeded rng makes the test deterministic anyway.
    n = 5_000
    image = np.repeat(pop.preferred_images[1:2], n, axis=0)
    window = 1.0
    lam = pop.rates(image[:1])[0] * window  # per unit
    counts = pop.spike_counts(image, window, rng=np.random.default_rng(0))
    assert counts.shape == (n, 3) and counts.dtype == np.int64
    mean, var = counts.mean(axis=0), counts.var(axis=0, ddof=1)
    assert np.all(np.abs(mean - lam) < 5 * np.sqrt(lam / n))
    assert np.all(np.abs(var - lam) < 5 * np.sqrt((lam + 2 * lam**2) / n))
    assert lam[1] > 3 * lam[0]  # the preferred unit responds far more: not a trivial check


def test_spike_train_bins():
    rates = np.array([5.0, 40.0, 0.0])
    train = spike_train(rates, duration_s=200.0, bin_s=0.001, rng=np.random.default_rng(1))
    assert train.shape == (200_000, 3) and train.dtype == np.int64
    total = train.sum(axis=0)
    expected = rates * 200.0
    assert np.all(np.abs(total - expected) <= 5 * np.sqrt(expected))  # Poisson s.e.
    assert total[2] == 0
    per_bin = train[:, 1]
    # Poisson(0.04) per bin: variance equals mean (within 5 s.e. of the variance estimate)
    assert abs(per_bin.var() - per_bin.mean()) < 5 * np.sqrt((0.04 + 2 * 0.04**2) / 200_000)
    assert spike_train(10.0, 0.5).shape == (500,)


def test_population_streams_are_seeded(pop):
    img = pop.preferred_images
    a = pop.spike_counts(img, 1.0, rng=3)
    b = pop.spike_counts(img, 1.0, rng=3)
    np.testing.assert_array_equal(a, b)
    assert pop.spike_train(pop.rates(img)[0], 1.0, rng=4).shape == (1000, 3)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((2, 32, 32, 3), dtype=np.float32), "uint8"),
        (np.zeros((32, 32, 3), dtype=np.uint8), r"shape \(n, H, W, 3\), got \(32, 32, 3\)"),
        (np.zeros((2, 32, 32, 4), dtype=np.uint8), r"got \(2, 32, 32, 4\)"),
        (np.zeros((2, 16, 16, 3), dtype=np.uint8), r"\(2, 16, 16, 3\).*\(n, 32, 32, 3\)"),
        ([[0]], "numpy array"),
    ],
)
def test_bad_images_give_one_line_errors(pop, images, match):
    with pytest.raises(ValueError, match=match) as err:
        pop.rates(images)
    assert "\n" not in str(err.value)


def test_constructor_validation():
    images = smooth_images(4, seed=6)
    with pytest.raises(ValueError, match="width is needed"):
        InSilicoPopulation(images[:1])
    with pytest.raises(ValueError, match="widths must be finite and > 0"):
        InSilicoPopulation(images[:1], width=0.0)
    with pytest.raises(ValueError, match="at least 2 reference"):
        InSilicoPopulation(images[:1], images[1:2])
    with pytest.raises(IndexError, match="out of range"):
        InSilicoPopulation(images[:1], images[1:]).unit(1)


# -- with the project's default generator --------------------------------------------------------


@pytest.fixture(scope="module")
def gen(one_torch_thread):
    from bci.generators import load

    return load("default", device="cpu")


@pytest.fixture(scope="module")
def face_units(gen):
    return InSilicoPopulation.from_generator(gen, n_units=3, seed=0, n_reference=128)


def test_from_generator_prefers_the_render_of_its_latent(gen, face_units):
    np.testing.assert_array_equal(
        face_units.preferred_images, gen.render(face_units.preferred_latents)
    )
    rates = face_units.rates(gen.render(face_units.preferred_latents))
    np.testing.assert_allclose(np.diag(rates), 52.0)


def test_random_faces_give_a_graded_low_response(gen, face_units):
    rates = face_units.rates(gen.render(gen.sample_latents(200, seed=99)))
    peak, base = face_units.peak_hz, face_units.baseline_hz
    frac = (rates - base) / peak
    median = np.median(frac, axis=0)
    assert np.all((median > 0.03) & (median < 0.4))  # low but not zero
    spread = np.percentile(frac, 90, axis=0) - np.percentile(frac, 10, axis=0)
    assert np.all(spread > 0.1)  # graded: some random faces are much closer than others
    assert np.all(frac.max(axis=0) < 0.9)


def test_latents_nearer_the_preferred_one_respond_more(gen, face_units):
    z_pref = face_units.preferred_latents[0]
    z_far = gen.sample_latents(20, seed=5)
    means = []
    for a in (0.0, 0.5, 0.8, 1.0):
        z = (a * z_pref + (1 - a) * z_far).astype(np.float32)
        means.append(face_units.rates(gen.render(z))[:, 0].mean())
    assert np.all(np.diff(means) > 0)


def test_single_unit_view(gen, face_units):
    unit = face_units.unit(2)
    img = gen.render(gen.sample_latents(5, seed=1))
    np.testing.assert_array_equal(unit.rates(img), face_units.rates(img)[:, 2])
    np.testing.assert_array_equal(unit.preferred_image, face_units.preferred_images[2])
    np.testing.assert_array_equal(unit.preferred_latent, face_units.preferred_latents[2])
    assert unit.peak_rate == 52.0
    assert unit.spike_counts(img, 0.5, rng=0).shape == (5,)
    assert unit.spike_train(20.0, 0.1).shape == (100,)
    single = InSilicoUnit.from_generator(gen, seed=3, n_reference=16)
    assert single.preferred_image.shape == (64, 64, 3)
    assert single.rates(single.preferred_image[None])[0] == pytest.approx(52.0)
