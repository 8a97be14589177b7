"""Fit the subject's face model, head poses, expressions and camera focal to a video's landmarks.

No morphable model can be downloaded, so the model is built from the footage itself
(``model.LinearFaceModel``): the identity is the subject's canonical 3D shape, lifted from
MediaPipe's relative depth and refined; the expression basis is the PCA of the per-frame
non-rigid residuals. The method, all frames batched at once:

1. Lift: each frame's landmarks become a camera-space cloud with MediaPipe's relative depth.
   Their robust rigid mean, frontalised by the face's left-right symmetry and scaled to
   0.15 wide, is the first canonical shape; the landmarks that move least across frames
   are the rigid ones, and per-frame alignment on them gives the first poses.
2. Focal: the lift depends on the focal; each candidate field of view is scored by the
   reprojection error of a short rigid fit plus a prior towards ``fov_prior`` (near-frontal
   footage barely shows perspective), the best refined by a parabola in log focal.
3. Pose: rigid fit of all frames on the rigid landmarks, the canonical shape fixed.
4. Identity and basis: on up to ``basis_frames`` frames, the canonical shape is refined
   jointly with poses and free per-frame 3D residuals (L2-regularised, strongly at the
   rigid landmarks so that the pose explains those); the PCA of the residuals gives K
   orthonormal expression displacements.
5. Expressions: poses and K coefficients per frame, refit with the basis fixed.

Every stage minimises a Huber reprojection error (residuals in face widths; the rigid stages
on the rigid landmarks, the others on all with eyes, eyelids and lips weighted up) plus a
weak term on MediaPipe's relative depth, with Adam. Poses and
expressions are smoothed in time by second differences, so frames without a detection
(no data term) follow their neighbours.

Conventions: ``avatar3d.camera`` (OpenGL-style camera space, principal point at the image
centre); ``x_cam = R @ x_head + t``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor

from avatar3d.camera import intrinsics, project, rodrigues, unproject
from avatar3d.errors import BadArgumentError, BadInputError
from avatar3d.face import topology as topo
from avatar3d.face.model import FACE_WIDTH, HEAD_CENTRE_DEPTH, LinearFaceModel

# Landmark pairs mirrored by the face's symmetry: (subject's right, subject's left).
_MIRROR_PAIRS = np.array(
    [topo.FACE_SIDES, topo.MOUTH_CORNERS, topo.INNER_CORNERS,
     (topo.RIGHT_EYE_CORNERS[0], topo.LEFT_EYE_CORNERS[0]), (topo.RIGHT_EYE_CORNERS[1], topo.LEFT_EYE_CORNERS[1])]
    + list(zip(topo.RIGHT_UPPER_LID + topo.RIGHT_LOWER_LID, topo.LEFT_UPPER_LID + topo.LEFT_LOWER_LID)))


@dataclass
class FitConfig:
    """Settings of the face-model fit."""

    num_expressions: int = 48
    """Expression basis size K (capped at the number of frames the basis is learnt from)."""
    iterations_pose: int = 100
    """Adam steps of the rigid pose fit of all frames."""
    iterations_basis: int = 250
    """Adam steps of the identity and per-frame residual fit that the basis is learnt from."""
    iterations_joint: int = 150
    """Adam steps of the final pose and expression fit of all frames."""
    iterations_focal: int = 25
    """Adam steps of the rigid fit that scores each focal candidate."""
    learning_rate: float = 0.001
    """Adam step size at the start of each stage (parameters are scaled so that one size suits all)."""
    final_learning_rate: float = 0.01
    """Fraction of the step size left at the end of each stage (exponential decay)."""
    fov_min: float = 15.0
    """Smallest horizontal field of view tried, degrees."""
    fov_max: float = 60.0
    """Largest horizontal field of view tried, degrees."""
    fov_steps: int = 7
    """Number of fields of view tried between fov_min and fov_max."""
    fov_prior: float = 24.0
    """Field of view, degrees, chosen where near-frontal footage cannot tell (GeneFace's 1200 px at 512²)."""
    weight_fov_prior: float = 0.05
    """Weight of the squared log ratio of the focal to the prior's against the focal score."""
    focal_frames: int = 48
    """Frames (evenly spaced) that score the focal candidates."""
    basis_frames: int = 400
    """Most frames (evenly spaced) that the identity and expression basis are learnt from."""
    weight_eyes: float = 3.0
    """Data weight of the iris landmarks (others 1)."""
    weight_eyelids: float = 20.0
    """Data weight of the eyelid contours."""
    weight_lips: float = 5.0
    """Data weight of the lip contours."""
    weight_depth: float = 0.1
    """Weight of MediaPipe's relative depth against the 2D reprojection error."""
    huber: float = 0.01
    """Residual where the robust loss turns from quadratic to linear, face widths."""
    smooth_pose: float = 30.0
    """Weight of the second differences of the head's motion (landmark paths in camera space)."""
    smooth_expression: float = 3.0
    """Weight of the second differences of the expression displacements."""
    regularise_expression: float = 0.01
    """L2 weight of the expression displacements."""
    regularise_residual: float = 0.05
    """L2 weight of the free per-frame residuals that the basis is learnt from."""
    regularise_rigid: float = 10.0
    """L2 weight of those residuals at the landmarks that move least, which ties the head pose to them."""
    regularise_identity: float = 0.01
    """L2 weight of the refinement of the canonical shape."""

    def __post_init__(self):
        if self.num_expressions < 1:
            raise BadArgumentError(f"num_expressions {self.num_expressions}: give at least 1")
        if not 0 < self.fov_min <= self.fov_max < 180 or self.fov_steps < 1:
            raise BadArgumentError(f"fields of view {self.fov_min}-{self.fov_max} in {self.fov_steps} steps: "
                                   f"give 0 < fov_min <= fov_max < 180 and fov_steps >= 1")


@dataclass
class FaceFit:
    """The fitted face model and its per-frame parameters.

    Attributes:
        model: the subject's face model (head space, see ``face.model``).
        expression: (T, K) expression coefficients per frame.
        rotation: (T, 3, 3) head pose rotations, head space to camera space.
        translation: (T, 3) head pose translations: ``x_cam = rotation @ x_head + translation``.
        intrinsics: (3, 3) K in pixels at the input image size, principal point at the centre.
        reprojection_px: (T,) median landmark reprojection error per frame, pixels; NaN where
            no face was detected.
    """

    model: LinearFaceModel
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    intrinsics: np.ndarray
    reprojection_px: np.ndarray


@dataclass
class _Observations:
    """The input as float32 tensors; undetected frames hold zeros and have ``mask`` 0."""

    uv: Tensor  # (T, 478, 2) pixels
    depth: Tensor  # (T, 478) MediaPipe's depth, pixels, relative to each frame's mean
    mask: Tensor  # (T,) 1 detected, 0 not
    face_px: float  # median face width, pixels: the unit of residuals
    image_size: int
    weights: Tensor  # (478,) data weights, summing to 1


def fit_face(landmarks_px: np.ndarray, depth_px: np.ndarray, detected: np.ndarray, image_size: int,
             config: FitConfig = FitConfig(), progress: Callable[[int, int], None] | None = None) -> FaceFit:
    """Fits a face model, per-frame head poses and expressions and the focal to landmarks.

    Args:
        landmarks_px: (T, 478, 2) MediaPipe landmarks, pixels (u right, v down).
        depth_px: (T, 478) MediaPipe's relative depth in the same pixel scale (smaller is nearer).
        detected: (T,) bool, False where no face was found (those rows are ignored).
        image_size: side of the square frames, pixels.
        config: fit settings.
        progress: called with (steps done, steps in all) as the optimisation goes.

    Returns:
        The fit; see `FaceFit`.

    Raises:
        BadInputError: no frames, no detected face, or malformed arrays.
    """
    obs = _observations(landmarks_px, depth_px, detected, image_size, config)
    steps = _StepCounter(progress, config.fov_steps * config.iterations_focal + config.iterations_pose
                         + config.iterations_basis + config.iterations_joint)
    # Adam's moment estimates of barely moving parameters decay into subnormal floats, which
    # are tens of times slower on CPUs: flush them to zero while fitting.
    torch.set_flush_denormal(True)
    try:
        focal, canonical, rigid, omega, trans = _focal_search(obs, config, steps)
        omega, trans = _fit_pose(dataclasses.replace(obs, weights=rigid), canonical, omega, trans, focal,
                                 config, steps)
        canonical, basis, coefficients, omega, trans = _learn_basis(obs, canonical, rigid, omega, trans, focal,
                                                                    config, steps)
        expression, omega, trans = _fit_expression(obs, canonical, basis, coefficients, omega, trans, focal,
                                                   config, steps)
    finally:
        torch.set_flush_denormal(False)
    model = LinearFaceModel(canonical.numpy(), basis.numpy())
    with torch.no_grad():
        cam = _to_camera(model.landmarks(expression), omega, trans)
        error = (_project(cam, focal, image_size) - obs.uv).norm(dim=-1).median(dim=-1).values
    error[obs.mask == 0] = float("nan")
    return FaceFit(
        model=model,
        expression=expression.numpy(),
        rotation=rodrigues(omega).numpy(),
        translation=_translation(trans).numpy(),
        intrinsics=intrinsics(focal, image_size, image_size).numpy(),
        reprojection_px=error.numpy(),
    )


def _observations(landmarks_px, depth_px, detected, image_size: int, config: FitConfig) -> _Observations:
    landmarks_px = np.array(landmarks_px, dtype=np.float32)  # copies: undetected rows are zeroed below
    depth_px = np.array(depth_px, dtype=np.float32)
    detected = np.asarray(detected, dtype=bool)
    count = len(detected)
    if count == 0:
        raise BadInputError("no frames to fit the face model to: the video is empty")
    if landmarks_px.shape != (count, topo.NUM_LANDMARKS, 2) or depth_px.shape != (count, topo.NUM_LANDMARKS):
        raise BadInputError(f"landmarks {landmarks_px.shape} and depth {depth_px.shape} do not match "
                            f"{count} frames of 478 landmarks")
    if not detected.any():
        raise BadInputError("no face was detected in any frame: film the subject facing the camera")
    if not (np.isfinite(landmarks_px[detected]).all() and np.isfinite(depth_px[detected]).all()):
        raise BadInputError("detected frames hold non-finite landmarks")
    landmarks_px[~detected], depth_px[~detected] = 0, 0
    depth_px = depth_px - depth_px.mean(axis=1, keepdims=True)
    sides = landmarks_px[detected][:, topo.FACE_SIDES]
    weights = np.ones(topo.NUM_LANDMARKS, dtype=np.float32)
    weights[list(topo.RIGHT_IRIS + topo.LEFT_IRIS)] = config.weight_eyes
    weights[list(topo.EYELIDS)] = config.weight_eyelids
    weights[list(topo.LIPS)] = config.weight_lips
    return _Observations(
        uv=torch.from_numpy(landmarks_px),
        depth=torch.from_numpy(depth_px),
        mask=torch.from_numpy(detected.astype(np.float32)),
        face_px=float(np.median(np.linalg.norm(sides[:, 0] - sides[:, 1], axis=-1))),
        image_size=image_size,
        weights=torch.from_numpy(weights / weights.sum()),
    )


class _StepCounter:
    """Reports optimisation steps to the caller's progress callback."""

    def __init__(self, progress: Callable[[int, int], None] | None, total: int):
        self.progress, self.total, self.done = progress, total, 0

    def step(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


# --- geometry ---------------------------------------------------------------------------


def _translation(trans: Tensor) -> Tensor:
    """Camera-space translations (T, 3) from (x/depth, y/depth, log depth) parameters (T, 3).

    The head origin's image direction and log depth are the parameters because they are about
    equally well determined by the landmarks, which suits one Adam step size for all.
    """
    depth = trans[:, 2:].exp()
    return torch.cat([trans[:, :2] * depth, -depth], dim=1)


def _to_camera(points: Tensor, omega: Tensor, trans: Tensor) -> Tensor:
    """Head-space points (T, N, 3) posed into camera space by per-frame (omega, trans)."""
    return points @ rodrigues(omega).transpose(-1, -2) + _translation(trans)[:, None]


def _project(cam: Tensor, focal: float, image_size: int) -> Tensor:
    """Pixels (..., 2) of camera-space points (..., 3) through a centred square camera."""
    return project(cam, intrinsics(focal, image_size, image_size))[..., :2]


def _similarity(src: Tensor, dst: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Weighted least-squares similarity (Umeyama) with ``dst ≈ s * R @ src + c``.

    Args:
        src: (..., N, 3) points.
        dst: (..., N, 3) points.
        weights: (N,) non-negative point weights; None weighs all alike.

    Returns:
        s (...,), R (..., 3, 3), c (..., 3).
    """
    weights = torch.ones(src.shape[-2], dtype=src.dtype) if weights is None else weights.to(src.dtype)
    weights = (weights / weights.sum())[:, None]
    src_mean, dst_mean = (weights * src).sum(-2, keepdim=True), (weights * dst).sum(-2, keepdim=True)
    src_c, dst_c = src - src_mean, dst - dst_mean
    U, S, Vt = torch.linalg.svd(dst_c.transpose(-1, -2) @ (weights * src_c))
    # Flip the weakest axis where the best orthogonal map is a reflection.
    sign = torch.sign(torch.linalg.det(U @ Vt))
    D = torch.ones_like(S)
    D[..., 2] = sign
    R = U @ (D[..., None] * Vt)
    s = (S * D).sum(-1) / (weights * src_c ** 2).sum((-1, -2))
    c = dst_mean[..., 0, :] - s[..., None] * (R @ src_mean[..., 0, :, None])[..., 0]
    return s, R, c


def _frontalise(shape: Tensor) -> Tensor:
    """A mean face cloud (478, 3) in camera axes moved into head space.

    x runs from the subject's right to left along the mirrored landmark pairs (fixing yaw and
    roll by symmetry); y is the camera's up made orthogonal to x (pitch as seen on average);
    the face is scaled to FACE_WIDTH, and the origin lies on the symmetry plane,
    HEAD_CENTRE_DEPTH behind the face sides' midpoint.
    """
    right, left = shape[_MIRROR_PAIRS[:, 0]], shape[_MIRROR_PAIRS[:, 1]]
    x = (left - right).mean(0)
    x = x / x.norm()
    y = torch.tensor([0.0, 1.0, 0.0], dtype=shape.dtype)
    y = y - (y @ x) * x
    y = y / y.norm()
    axes = torch.stack([x, y, torch.linalg.cross(x, y)])
    head = shape @ axes.T
    head = head * (FACE_WIDTH / (head[topo.FACE_SIDES[0]] - head[topo.FACE_SIDES[1]]).norm())
    sides = head[list(topo.FACE_SIDES)].mean(0)
    origin = torch.stack([head[_MIRROR_PAIRS.ravel(), 0].mean(), sides[1], sides[2] - HEAD_CENTRE_DEPTH])
    return head - origin


def _fill_missing(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(T, D) values with rows where ``mask`` is False interpolated linearly in time."""
    frames = np.arange(len(values))
    return np.stack([np.interp(frames, frames[mask], column[mask]) for column in values.T], 1)


# --- initialisation and focal -----------------------------------------------------------


def _lift(obs: _Observations, focal: float) -> tuple[Tensor, Tensor, Tensor]:
    """Camera-space landmark clouds from 2D and MediaPipe depth, and their canonical shape.

    MediaPipe's depth is in pixels, so its scale in scene units is that of x and y: a first
    similarity fit of the weak-perspective clouds gives each frame's pixels per unit, which
    with the focal gives the face's depth; each landmark is then unprojected at that depth
    plus its relative depth.

    Returns:
        clouds (T, 478, 3) float64, and from `_rigid_mean` canonical (478, 3) and rigid (478,).
    """
    detected = obs.mask > 0
    weak = torch.cat([obs.uv[..., :1], -obs.uv[..., 1:], -obs.depth[..., None]], -1).double()
    canonical, rigid = _rigid_mean(weak[detected])
    scale, _, _ = _similarity(canonical.expand_as(weak), weak, rigid)
    scale = torch.where(detected, scale, torch.ones_like(scale))
    depth = (focal + obs.depth.double()) / scale[:, None]
    clouds = unproject(obs.uv.double(), depth, intrinsics(focal, obs.image_size, obs.image_size))
    return clouds, *_rigid_mean(clouds[detected])


def _rigid_mean(clouds: Tensor, rounds: int = 3, rigid_fraction: float = 0.4) -> tuple[Tensor, Tensor]:
    """The robust mean shape of clouds (N, 478, 3) and the landmarks that move least.

    Alternates similarity alignment to the reference with a new reference: the per-coordinate
    median over frames, which ignores the frames where a landmark moved (speech, blinks), so
    it tends to the neutral face, not the average expression. From the second round on only
    the ``rigid_fraction`` of landmarks that stray least from the reference align the clouds,
    so that jaw and lids do not tilt the head.

    Returns:
        canonical (478, 3) in head space (see `_frontalise`), and rigid (478,) float: 1 for
        the least moving landmarks, 0 for the others.
    """
    reference = clouds[len(clouds) // 2]
    rigid = torch.ones(topo.NUM_LANDMARKS, dtype=clouds.dtype)
    for _ in range(rounds):
        s, R, c = _similarity(clouds, reference.expand_as(clouds), rigid)
        aligned = s[:, None, None] * clouds @ R.transpose(-1, -2) + c[:, None]
        reference = aligned.median(dim=0).values
        spread = (aligned - reference).norm(dim=-1).quantile(0.9, dim=0)
        rigid = (spread <= spread.quantile(rigid_fraction)).to(clouds.dtype)
    return _frontalise(reference), rigid


def _rigid_init(clouds: Tensor, canonical: Tensor, rigid: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-frame poses (omega (T, 3), trans (T, 3)) aligning canonical to the clouds on the rigid landmarks."""
    s, R, c = _similarity(canonical.expand_as(clouds), clouds, rigid)
    # Scaling a cloud about the camera centre changes none of its pixels: divide the scale
    # into the translation, so the canonical face keeps its size.
    c = c / s[:, None]
    detected = mask.numpy() > 0
    omega = Rotation.from_matrix(R[detected].numpy()).as_rotvec()
    depth = -c[detected, 2].numpy()
    trans = np.stack([c[detected, 0].numpy() / depth, c[detected, 1].numpy() / depth, np.log(depth)], 1)
    full = np.zeros((len(mask), 6))
    full[detected] = np.concatenate([omega, trans], 1)
    full = _fill_missing(full, detected)
    full = torch.from_numpy(full).float()
    return full[:, :3].contiguous(), full[:, 3:].contiguous()


def _focal_search(obs: _Observations, config: FitConfig, steps: _StepCounter):
    """The focal (pixels) whose MediaPipe lift is most consistent with the 2D landmarks.

    Returns:
        focal, canonical (478, 3), rigid (478,) data weights of the least moving landmarks
        (summing to 1), omega (T, 3), trans (T, 3) at that focal.
    """
    sub = _subset(obs, _spread(obs.mask, config.focal_frames))
    focals = _focal(np.linspace(config.fov_min, config.fov_max, config.fov_steps), obs.image_size)
    # Unless the head turns widely, every focal fits about equally well (each with its own
    # lifted shape): the prior then decides.
    scores = config.weight_fov_prior * np.log(focals / _focal(config.fov_prior, obs.image_size)) ** 2
    for index, focal in enumerate(focals):
        canonical, rigid, omega, trans = _initial_fit(sub, focal)
        rigid_obs = dataclasses.replace(sub, weights=rigid)
        omega, trans = _fit_pose(rigid_obs, canonical, omega, trans, focal, config, steps,
                                 iterations=config.iterations_focal, smooth=0.0)
        with torch.no_grad():
            scores[index] += _data_loss(_to_camera(canonical[None], omega, trans), rigid_obs, focal, config).item()
    focal = _parabola_minimum(np.log(focals), scores)
    return focal, *_initial_fit(obs, focal)


def _initial_fit(obs: _Observations, focal: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Canonical shape, rigid weights and poses from the lift at one focal (see `_focal_search`)."""
    clouds, canonical, rigid = _lift(obs, focal)
    omega, trans = _rigid_init(clouds, canonical, rigid, obs.mask)
    return canonical.float(), (rigid / rigid.sum()).float(), omega, trans


def _focal(fov_degrees, image_size: int):
    """Focal length in pixels of a horizontal field of view across ``image_size`` pixels."""
    return image_size / 2 / np.tan(np.radians(fov_degrees) / 2)


def _parabola_minimum(x: np.ndarray, y: np.ndarray) -> float:
    """exp of the minimum of the parabola through the best sample and its neighbours, within the samples."""
    best = int(np.argmin(y))
    if best == 0 or best == len(y) - 1:
        return float(np.exp(x[best]))
    a, b, _ = np.polyfit(x[best - 1: best + 2], y[best - 1: best + 2], 2)
    return float(np.exp(np.clip(-b / (2 * a), x[best - 1], x[best + 1]) if a > 0 else x[best]))


def _spread(mask: Tensor, count: int) -> Tensor:
    """Indices of up to ``count`` detected frames, evenly spread over the detected ones."""
    detected = torch.nonzero(mask).flatten()
    picks = np.linspace(0, len(detected) - 1, min(count, len(detected))).round().astype(np.int64)
    return torch.unique(detected[picks])


def _subset(obs: _Observations, frames: Tensor) -> _Observations:
    return _Observations(obs.uv[frames], obs.depth[frames], obs.mask[frames], obs.face_px, obs.image_size,
                         obs.weights)


# --- losses -----------------------------------------------------------------------------


def _huber(residual: Tensor, delta: float) -> Tensor:
    """Huber cost of residual norms, scaled so that a residual of ``delta`` costs 1/2."""
    quadratic = 0.5 * (residual / delta) ** 2
    return torch.where(residual < delta, quadratic, residual / delta - 0.5)


def _data_loss(cam: Tensor, obs: _Observations, focal: float, config: FitConfig) -> Tensor:
    """Mean over detected frames of the weighted robust reprojection and relative-depth errors."""
    error = (_project(cam, focal, obs.image_size) - obs.uv).norm(dim=-1) / obs.face_px
    cost = _huber(error, config.huber) @ obs.weights
    if config.weight_depth:
        depth = -cam[..., 2]
        mean = depth.mean(-1, keepdim=True)
        relative = (depth - mean) * focal / mean
        depth_error = (relative - obs.depth).abs() / obs.face_px
        cost = cost + config.weight_depth * (_huber(depth_error, config.huber) @ obs.weights)
    return (cost * obs.mask).sum() / obs.mask.sum()


def _roughness(values: Tensor, delta: float) -> Tensor:
    """Temporal roughness of per-frame landmark displacements, like a data term.

    Args:
        values: (T, ...) per frame, whose squared norm is the sum over the 478 landmarks of
            squared head-space distances (positions, or coefficients of an orthonormal basis).
        delta: the Huber threshold, face widths.

    Returns:
        Mean over frames and landmarks of half the squared second difference, in units of
        ``delta`` face widths, so a weight of 1 makes it as costly as a reprojection error
        of the same size at every landmark.
    """
    if len(values) < 3:
        return values.new_zeros(())
    second = (values[2:] - 2 * values[1:-1] + values[:-2]).flatten(1)
    return 0.5 * (second / (FACE_WIDTH * delta)).pow(2).sum(1).mean() / topo.NUM_LANDMARKS


def _motion_roughness(anchor: Tensor, omega: Tensor, trans: Tensor, delta: float) -> Tensor:
    """Roughness of the camera-space paths of the rigid face's landmarks, anchor (478, 3)."""
    return _roughness(_to_camera(anchor[None], omega, trans), delta)


def _size_cost(displacement: Tensor, weights: Tensor, delta: float) -> Tensor:
    """Mean over frames of half the squared landmark displacement (T, 478, 3), units FACE_WIDTH * delta.

    Landmarks are weighted by ``weights`` (478,), summing to 1 like the data weights.
    """
    return 0.5 * ((displacement / (FACE_WIDTH * delta)).pow(2).sum(-1) @ weights).mean()


# --- stages -----------------------------------------------------------------------------


def _adam(parameters: list[Tensor], loss: Callable[[], Tensor], iterations: int, config: FitConfig,
          steps: _StepCounter) -> None:
    optimiser = torch.optim.Adam(parameters, lr=config.learning_rate)
    # Adam's steps stay near the learning rate until it decays: the decay is what converges.
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, config.final_learning_rate ** (1 / max(iterations, 1)))
    for _ in range(iterations):
        optimiser.zero_grad(set_to_none=True)
        loss().backward()
        optimiser.step()
        schedule.step()
        steps.step()


def _fit_pose(obs: _Observations, canonical: Tensor, omega: Tensor, trans: Tensor, focal: float,
              config: FitConfig, steps: _StepCounter, iterations: int | None = None,
              smooth: float | None = None) -> tuple[Tensor, Tensor]:
    """Rigid fit of per-frame poses with the canonical shape fixed; returns (omega, trans)."""
    omega, trans = omega.clone().requires_grad_(), trans.clone().requires_grad_()
    smooth = config.smooth_pose if smooth is None else smooth

    def loss() -> Tensor:
        cost = _data_loss(_to_camera(canonical[None], omega, trans), obs, focal, config)
        return cost + smooth * _motion_roughness(canonical, omega, trans, config.huber)

    _adam([omega, trans], loss, config.iterations_pose if iterations is None else iterations, config, steps)
    return omega.detach(), trans.detach()


def _learn_basis(obs: _Observations, canonical: Tensor, rigid: Tensor, omega: Tensor, trans: Tensor,
                 focal: float, config: FitConfig, steps: _StepCounter):
    """Refines the canonical shape and learns the expression basis from free per-frame residuals.

    The residuals are held back hard at the least moving landmarks (``rigid``, (478,)
    weights): there the pose has to explain the data, so no basis vector can mimic a head
    rotation and trade off against the pose later.

    Returns:
        canonical (478, 3), basis (K, 478, 3) orthonormal, coefficients (T, K) (interpolated in
        time for frames not in the learning subset), and the poses (omega, trans) with the
        subset's frames refit.
    """
    frames = _spread(obs.mask, config.basis_frames)
    sub = _subset(obs, frames)
    sub_omega, sub_trans = omega[frames].clone().requires_grad_(), trans[frames].clone().requires_grad_()
    identity = torch.zeros_like(canonical, requires_grad=True)
    residual = torch.zeros(len(frames), topo.NUM_LANDMARKS, 3, requires_grad=True)

    def loss() -> Tensor:
        cam = _to_camera(canonical + identity + residual, sub_omega, sub_trans)
        return (_data_loss(cam, sub, focal, config)
                + config.regularise_residual * _size_cost(residual, sub.weights, config.huber)
                + config.regularise_rigid * _size_cost(residual, rigid, config.huber)
                + config.regularise_identity * _size_cost(identity[None], sub.weights, config.huber))

    _adam([sub_omega, sub_trans, identity, residual], loss, config.iterations_basis, config, steps)
    with torch.no_grad():
        residual = residual.detach()
        canonical = canonical + identity + residual.mean(0)
        residual = residual - residual.mean(0)
        # The scale of the face trades exactly against its distance: restore the face width.
        scale = FACE_WIDTH / (canonical[topo.FACE_SIDES[0]] - canonical[topo.FACE_SIDES[1]]).norm()
        canonical, residual = canonical * scale, residual * scale
        omega, trans = omega.clone(), trans.clone()
        omega[frames], trans[frames] = sub_omega.detach(), sub_trans.detach()
        trans[:, 2] += scale.log()
        flat = residual.flatten(1)
        count = min(config.num_expressions, len(frames))
        basis = torch.linalg.svd(flat, full_matrices=False).Vh[:count]
        projected = (flat @ basis.T).numpy()
        frame_index = frames.numpy()
        coefficients = np.stack([np.interp(np.arange(len(obs.mask)), frame_index, column)
                                 for column in projected.T], 1)
    return canonical, basis.reshape(count, topo.NUM_LANDMARKS, 3), torch.from_numpy(coefficients).float(), omega, trans


def _fit_expression(obs: _Observations, canonical: Tensor, basis: Tensor, coefficients: Tensor,
                    omega: Tensor, trans: Tensor, focal: float, config: FitConfig, steps: _StepCounter):
    """Final fit of per-frame poses and expression coefficients; returns (expression, omega, trans)."""
    omega, trans = omega.clone().requires_grad_(), trans.clone().requires_grad_()
    expression = coefficients.clone().requires_grad_()
    # With an orthonormal basis, a coefficient vector's squared norm is the sum over
    # landmarks of the squared displacements: size and roughness are measured per landmark.
    scale = FACE_WIDTH * config.huber
    model = LinearFaceModel(canonical.numpy(), basis.numpy())

    def loss() -> Tensor:
        cost = _data_loss(_to_camera(model.landmarks(expression), omega, trans), obs, focal, config)
        smooth = (config.smooth_pose * _motion_roughness(canonical, omega, trans, config.huber)
                  + config.smooth_expression * _roughness(expression, config.huber))
        size = 0.5 * (expression / scale).pow(2).sum(-1).mean() / topo.NUM_LANDMARKS
        return cost + smooth + config.regularise_expression * size

    _adam([omega, trans, expression], loss, config.iterations_joint, config, steps)
    return expression.detach(), omega.detach(), trans.detach()
