"""A smooth analytic head phantom, and volumes of it moved by known rigid-body transforms.

The phantom is a function of world coordinates (mm): a head ellipsoid with soft edges, a brighter
brain, dark ventricles, a few blobs and a gentle texture, so that every part of a volume has
gradients for a registration to lock onto. A moved volume is the phantom evaluated exactly at the
moved positions (no resampling of a sampled image), so the motion parameters are known exactly.

Motion parameters follow :mod:`bci.bridge.motion`: translations x, y, z (mm) and rotations about
x, y, z (degrees) of SimpleITK's ``Euler3DTransform`` about the volume's centre; the transform
maps a point of the reference volume to where that point of the head is in the moved volume.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813
from numpy.typing import ArrayLike

#: 64 x 64 x 36 voxels of 3 x 3 x 3.5 mm, centred on the origin (a common EPI grid).
EPI_SHAPE = (64, 64, 36)
EPI_ZOOMS = (3.0, 3.0, 3.5)


def epi_affine(shape: tuple[int, int, int] = EPI_SHAPE, zooms: ArrayLike = EPI_ZOOMS) -> np.ndarray:
    """A voxel-to-world affine (RAS mm) with the grid centred on the origin."""
    z = np.asarray(zooms, dtype=np.float64)
    affine = np.diag([*z, 1.0])
    affine[:3, 3] = -z * (np.asarray(shape) - 1) / 2.0
    return affine


def _soft(inside: np.ndarray, width: float = 2.0) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(inside / width))


def _ellipsoid(p: np.ndarray, centre: tuple, radii: tuple) -> np.ndarray:
    q = (p - np.asarray(centre)) / np.asarray(radii)
    r = np.sqrt(np.sum(q * q, axis=-1))
    return _soft((1.0 - r) * min(radii))


def head(points: np.ndarray) -> np.ndarray:
    """The phantom's intensity at ``(..., 3)`` world points (mm)."""
    p = np.asarray(points, dtype=np.float64)
    value = 400.0 * _ellipsoid(p, (0, 0, 0), (72, 88, 52))
    value += 300.0 * _ellipsoid(p, (0, -4, 4), (62, 76, 42))
    value -= 250.0 * _ellipsoid(p, (-9, 6, 6), (5, 20, 9))
    value -= 250.0 * _ellipsoid(p, (9, 6, 6), (5, 20, 9))
    for centre, radii, level in (
        ((30, -30, -10), (12, 16, 10), 150.0),
        ((-28, 35, -5), (14, 10, 12), -120.0),
        ((0, 50, 20), (20, 12, 8), 100.0),
        ((-35, -40, 15), (10, 10, 14), 130.0),
    ):
        value += level * _ellipsoid(p, centre, radii)
    texture = np.sin(p[..., 0] / 9.0) * np.cos(p[..., 1] / 11.0) * np.sin(p[..., 2] / 7.0 + 1.0)
    return value + 40.0 * texture * _ellipsoid(p, (0, 0, 0), (72, 88, 52))


def rigid_transform(params: ArrayLike, centre: ArrayLike) -> sitk.Euler3DTransform:
    """SimpleITK's rigid transform of motion ``params`` (tx, ty, tz mm; rx, ry, rz degrees)."""
    t = np.asarray(params, dtype=np.float64).reshape(-1)
    if t.shape != (6,):
        raise ValueError(f"motion parameters must have 6 values, got {t.size}")
    transform = sitk.Euler3DTransform()
    transform.SetCenter([float(c) for c in centre])
    transform.SetRotation(*(math.radians(float(a)) for a in t[3:]))
    transform.SetTranslation([float(x) for x in t[:3]])
    return transform


def grid_centre(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """World coordinates of the centre of a voxel grid."""
    return affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0) + affine[:3, 3]


def moved_volume(
    params: ArrayLike,
    shape: tuple[int, int, int] = EPI_SHAPE,
    affine: np.ndarray | None = None,
) -> np.ndarray:
    """The phantom after the head moved by ``params``, sampled on the grid.

    Parameters
    ----------
    params : array_like
        ``(6,)`` motion (tx, ty, tz mm; rx, ry, rz degrees) about the grid's centre.
    shape : tuple of int
        Grid shape.
    affine : np.ndarray or None
        Voxel-to-world affine (default :func:`epi_affine` of ``shape``).

    Returns
    -------
    np.ndarray
        ``shape`` float32 volume.
    """
    affine = epi_affine(shape) if affine is None else np.asarray(affine, dtype=np.float64)
    return head(_source_points(params, shape, affine)).astype(np.float32)


def _source_points(
    params: ArrayLike, shape: tuple[int, int, int], affine: np.ndarray
) -> np.ndarray:
    """``shape + (3,)`` world points of the reference head that are at each voxel after the move."""
    transform = rigid_transform(params, grid_centre(shape, affine))
    rot = np.asarray(transform.GetMatrix()).reshape(3, 3)
    centre = np.asarray(transform.GetCenter())
    shift = np.asarray(transform.GetTranslation())
    index = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    world = index @ affine[:3, :3].T + affine[:3, 3]
    # The head point now at q came from S^-1(q) = R^T (q - c - t) + c.
    return (world - centre - shift) @ rot + centre


def move_with_head(data: np.ndarray, params: ArrayLike, affine: np.ndarray) -> np.ndarray:
    """An image on the reference grid (e.g. an evoked response), moved with the head.

    Parameters
    ----------
    data : np.ndarray
        ``(i, j, k)`` image in the reference volume's frame.
    params : array_like
        ``(6,)`` motion, as in :func:`moved_volume`.
    affine : np.ndarray
        The grid's voxel-to-world affine.

    Returns
    -------
    np.ndarray
        ``data.shape`` float32: ``data`` linearly interpolated at the moved head's points (0
        outside the grid). With zero motion it is ``data`` exactly.
    """
    from scipy.ndimage import map_coordinates

    affine = np.asarray(affine, dtype=np.float64)
    source = _source_points(params, data.shape, affine)
    index = (source - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    coords = np.moveaxis(index, -1, 0)
    return map_coordinates(np.asarray(data, np.float32), coords, order=1, cval=0.0).astype(
        np.float32
    )


def random_motion(
    n_volumes: int, max_mm: float = 2.0, max_deg: float = 2.0, seed: int = 0
) -> np.ndarray:
    """Motion parameters of a series: the reference (zeros), then uniform draws within the bounds.

    Returns
    -------
    np.ndarray
        ``(n_volumes, 6)``: volume 0 is the reference; the others have every translation in
        ``[-max_mm, max_mm]`` and every rotation in ``[-max_deg, max_deg]``.
    """
    rng = np.random.default_rng(seed)
    params = np.zeros((n_volumes, 6))
    params[1:, :3] = rng.uniform(-max_mm, max_mm, (n_volumes - 1, 3))
    params[1:, 3:] = rng.uniform(-max_deg, max_deg, (n_volumes - 1, 3))
    return params


def write_moving_series(
    folder: str | Path,
    params: ArrayLike,
    *,
    tr_s: float = 2.0,
    noise: float = 5.0,
    seed: int = 0,
    shape: tuple[int, int, int] = EPI_SHAPE,
) -> list[Path]:
    """Write one NIfTI per volume of the phantom moved by ``params``, plus a brain mask.

    Files: ``vol_0000.nii.gz``, ... (TR in ``pixdim[4]``), ``mask.nii.gz`` (the phantom above
    half its brain intensity, on the reference grid) and ``motion.tsv`` (the true parameters).

    Parameters
    ----------
    folder : str or Path
        Where to write (created).
    params : array_like
        ``(n_volumes, 6)`` motion per volume.
    tr_s : float
        TR written in the headers.
    noise : float
        Standard deviation of the Gaussian noise added to each volume (brain ~700).
    seed : int
        Noise seed.
    shape : tuple of int
        Grid shape (the affine is :func:`epi_affine` of it).

    Returns
    -------
    list of Path
        The volume files, in order.
    """
    import nibabel as nib

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = np.asarray(params, dtype=np.float64).reshape(-1, 6)
    affine = epi_affine(shape)
    rng = np.random.default_rng(seed)
    reference = moved_volume(np.zeros(6), shape, affine)
    mask = (reference > 350.0).astype(np.uint8)
    nib.save(nib.Nifti1Image(mask, affine), folder / "mask.nii.gz")
    paths = []
    for i, p in enumerate(table):
        data = moved_volume(p, shape, affine) + noise * rng.standard_normal(shape)
        image = nib.Nifti1Image(data.astype(np.float32)[..., None], affine)
        image.header.set_xyzt_units("mm", "sec")
        image.header["pixdim"][4] = tr_s
        path = folder / f"vol_{i:04d}.nii.gz"
        nib.save(image, path)
        paths.append(path)
    header = "\t".join(
        ("volume", "trans_x_mm", "trans_y_mm", "trans_z_mm", "rot_x_deg", "rot_y_deg", "rot_z_deg")
    )
    rows = [f"{i}\t" + "\t".join(f"{v:.6f}" for v in p) for i, p in enumerate(table)]
    (folder / "motion.tsv").write_text("\n".join([header, *rows]) + "\n")
    return paths
