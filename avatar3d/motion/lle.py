"""Locally-linear-embedding post-net: pull predicted expression codes onto the subject's manifold.

As in GeneFace, each predicted code x is rebuilt from its K nearest codes of the subject's own
training frames (the bank) with the affine weights w (sum 1) that minimise ||x - sum_k w_k n_k||²,
as in the first step of locally linear embedding. The output blends that reconstruction with
the prediction, then clamps each dimension to the bank's quantiles, so a model trained on many
people yields expressions this subject actually makes, with none of the extreme outliers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy.spatial import cKDTree

from avatar3d.errors import BadArgumentError, BadInputError

# Frames per batch in `LLEProjector.project`: bounds the (chunk, K, K) Gram matrices and
# (chunk, K, D) neighbour arrays, whatever the length of the clip.
CHUNK = 4096


def barycentric_weights(queries: np.ndarray, neighbours: np.ndarray,
                        regularisation: float = 1e-3) -> np.ndarray:
    """Affine weights rebuilding each query from its neighbours (scikit-learn's ``barycenter_weights``).

    Args:
        queries: (M, D) points.
        neighbours: (M, K, D) the K neighbours of each query.
        regularisation: Added to the diagonal of each local Gram matrix, relative to its trace
            (absolute where the trace is 0); needed whenever K > D, as the Gram matrix is singular.

    Returns:
        (M, K) float64 weights, each row summing to 1.
    """
    queries = np.asarray(queries, np.float64)
    neighbours = np.asarray(neighbours, np.float64)
    if queries.ndim != 2 or neighbours.ndim != 3 or neighbours.shape[::2] != queries.shape:
        raise BadInputError(f"barycentric weights: need (M, D) queries and (M, K, D) neighbours, "
                            f"got {queries.shape} and {neighbours.shape}")
    if not regularisation >= 0:
        raise BadArgumentError(f"barycentric weights: regularisation must be >= 0, got {regularisation}")
    offsets = neighbours - queries[:, None, :]  # (M, K, D)
    gram = offsets @ offsets.transpose(0, 2, 1)  # (M, K, K)
    trace = np.trace(gram, axis1=1, axis2=2)
    # A zero trace means every neighbour equals the query: any weights do, the absolute ridge picks uniform ones.
    ridge = np.where(trace > 0, regularisation * trace, regularisation)
    k = neighbours.shape[1]
    gram[:, np.arange(k), np.arange(k)] += ridge[:, None]
    # The right-hand side keeps a trailing axis of 1 so that numpy reads it as a stack of vectors.
    weights = np.linalg.solve(gram, np.ones((len(queries), k, 1)))[..., 0]
    return weights / weights.sum(1, keepdims=True)


@dataclass(eq=False)
class LLEProjector:
    """Projects predicted expression codes onto those of the subject's training frames.

    Attributes:
        bank: (N, D) the subject's own expression codes, stored as float64.
        neighbours: Neighbours K per reconstruction; at most N are used.
        blend: Weight of the reconstruction: 0 keeps the prediction, 1 replaces it.
        quantiles: (low, high) per-dimension quantiles of the bank that bound the output;
            None does not clamp.
        lower, upper: (D,) the clamp bounds, or None without clamping.
    """

    bank: np.ndarray
    neighbours: int = 10
    blend: float = 0.25
    quantiles: tuple[float, float] | None = (0.03, 0.97)
    lower: np.ndarray | None = field(init=False, repr=False)
    upper: np.ndarray | None = field(init=False, repr=False)

    def __post_init__(self):
        self.bank = _checked_bank(self.bank)
        if not isinstance(self.neighbours, (int, np.integer)) or self.neighbours < 1:
            raise BadArgumentError(f"LLE neighbours must be a whole number >= 1, got {self.neighbours}")
        self.neighbours = min(int(self.neighbours), len(self.bank))
        if not 0 <= self.blend <= 1:
            raise BadArgumentError(f"LLE blend must lie in [0, 1] (0 keeps the prediction), got {self.blend}")
        self.lower = self.upper = None
        if self.quantiles is not None:
            low, high = _checked_quantiles(self.quantiles)
            self.lower, self.upper = np.quantile(self.bank, [low, high], axis=0)

    @cached_property
    def _tree(self) -> cKDTree:
        """k-d tree over the bank, built on first use: O(T log N) queries, never a (T, N) distance matrix."""
        return cKDTree(self.bank)

    def reconstruct(self, codes: np.ndarray) -> np.ndarray:
        """(T, D) codes -> (T, D) float64 affine combinations of their nearest bank rows."""
        _, index = self._tree.query(codes, k=self.neighbours)
        near = self.bank[index.reshape(len(codes), self.neighbours)]  # (T, K, D); query drops K when it is 1
        weights = barycentric_weights(codes, near)
        return np.einsum("tk,tkd->td", weights, near)

    def project(self, predicted: np.ndarray) -> np.ndarray:
        """Pulls (T, D) predicted codes towards the bank; (T, D) result of the input's float dtype."""
        predicted = np.asarray(predicted)
        dims = self.bank.shape[1]
        if predicted.ndim != 2 or predicted.shape[1] != dims:
            raise BadInputError(f"LLE projection: predicted codes have shape {predicted.shape}, but the "
                                f"subject's bank has {dims} codes per frame; use the bank of the same model")
        if not np.isfinite(predicted).all():
            raise BadInputError("LLE projection: the predicted codes hold NaN or infinity")
        dtype = predicted.dtype if np.issubdtype(predicted.dtype, np.floating) else np.float64
        codes = predicted.astype(np.float64)
        if self.blend > 0:  # with blend 0 the reconstruction would be multiplied away: skip the search
            for start in range(0, len(codes), CHUNK):
                part = codes[start:start + CHUNK]
                part += self.blend * (self.reconstruct(part) - part)  # in place: writes into codes
        if self.lower is not None:
            np.clip(codes, self.lower, self.upper, out=codes)
        return codes.astype(dtype, copy=False)


def _checked_bank(bank) -> np.ndarray:
    bank = np.asarray(bank, np.float64)
    if bank.ndim != 2 or bank.shape[0] < 1 or bank.shape[1] < 1:
        raise BadInputError(f"LLE bank: need (N, D) expression codes with N, D >= 1, got shape {bank.shape}; "
                            "prepare the subject's training frames first")
    if not np.isfinite(bank).all():
        raise BadInputError("LLE bank: the subject's expression codes hold NaN or infinity; prepare the subject again")
    return bank


def _checked_quantiles(quantiles) -> tuple[float, float]:
    try:
        low, high = (float(q) for q in quantiles)
    except (TypeError, ValueError):
        raise BadArgumentError(f"LLE quantiles must be a (low, high) pair or None, got {quantiles!r}") from None
    if not 0 <= low < high <= 1:
        raise BadArgumentError(f"LLE quantiles must satisfy 0 <= low < high <= 1, got ({low}, {high})")
    return low, high
