"""The in-memory search index: every stored descriptor in one preallocated float32 matrix, searched exactly.

A query reads the stored descriptors once, so its cost is memory traffic: 51 MB at 100 k faces, 512 MB
at 1 M, more than this machine's memory moves in the 5 ms and 60 ms a query may take. So a first pass
reads only each face's PREFIX leading principal components, a quarter of the bytes. A projection never
lengthens a distance, so every face within the threshold passes it; whole descriptors then decide
for the few that do. The search stays exact, whatever axes are used; principal ones keep the first pass
selective.

The index is not locked: its owner (the FaceStore) orders every call under its lock.
"""

import numpy as np
import numpy.typing as npt

DIM = 128
PREFIX = 32
# float32 rounding moves a squared distance by ~1e-6 (descriptors are ~1 long): widen each cut by
# more than that, then decide on distances computed in float64.
SLACK = 1e-5
NO_LABEL = -1


class Index:
    """Faces in row order: `ids[row]`, `rows[face]`, `vectors[row]` and `labels[row]` (a number the owner
    keeps with each face, NO_LABEL by default: people/placing.py keeps each face's person there)."""

    def __init__(self, capacity: int = 0):
        """An empty index with room for `capacity` faces (a store loading that many)."""
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        size = _capacity(capacity)
        self._matrix = np.zeros((size, DIM), np.float32)
        self._sq_norms = np.zeros(size, np.float32)
        self._prefix = np.zeros((size, PREFIX), np.float32)
        self._prefix_sq = np.zeros(size, np.float32)
        self._labels = np.full(size, NO_LABEL, np.int64)
        self._axes = np.eye(DIM, PREFIX, dtype=np.float32)  # until there are faces to fit axes to
        self._refit_at = capacity + 1024  # a store loading fits the axes once, when all are in

    def __len__(self):
        return len(self.ids)

    def __contains__(self, face):
        return face in self.rows

    def vector(self, face: str) -> np.ndarray:
        return self._matrix[self.rows[face]].copy()

    @property
    def vectors(self) -> np.ndarray:
        return self._matrix[: len(self.ids)]

    @property
    def labels(self) -> np.ndarray:
        return self._labels[: len(self.ids)]

    def add(self, ids: list[str], vectors: np.ndarray, labels: npt.ArrayLike = NO_LABEL) -> None:
        """Append faces (IDs not yet in the index), their float32 descriptors and labels."""
        n, end = len(self.ids), len(self.ids) + len(ids)
        if end > len(self._matrix):
            self._matrix, self._sq_norms, self._prefix, self._prefix_sq, self._labels = (
                _grown(a, _capacity(end), n) for a in self._arrays()
            )
        self._matrix[n:end] = vectors
        self._sq_norms[n:end] = np.einsum("ij,ij->i", self._matrix[n:end], self._matrix[n:end])
        self._labels[n:end] = labels
        self._project(n, end)
        self.rows.update(zip(ids, range(n, end)))
        self.ids.extend(ids)
        if end >= self._refit_at:
            self.fit_axes()

    def remove(self, face: str) -> None:
        # Move the last row into the hole, so the live rows stay one contiguous block.
        i, last = self.rows.pop(face), len(self.ids) - 1
        if i != last:
            moved = self.ids[last]
            for array in self._arrays():
                array[i] = array[last]
            self.ids[i], self.rows[moved] = moved, i
        self.ids.pop()

    def fit_axes(self) -> None:
        """The PREFIX principal axes of (a sample of) the stored descriptors, and every face's projection."""
        n = len(self.ids)
        sample = self._matrix[: n : max(1, n // 20_000)]
        if len(sample) > DIM:
            _, _, axes = np.linalg.svd(sample - sample.mean(axis=0), full_matrices=False)
            self._axes = np.ascontiguousarray(axes[:PREFIX].T)
        self._project(0, n)
        self._refit_at = 2 * n + 1024  # refit as the faces double: amortised O(1) a face

    def search(self, vector: np.ndarray, max_distance: float, limit: int, exclude: str | None = None) -> list:
        """[(id, distance)] within `max_distance` of `vector`, nearest first, at most `limit`, without `exclude`."""
        rows, sq = self._candidates(vector, max_distance)
        if len(rows) > limit + 1:  # one more than asked, in case `exclude` is among them; SLACK keeps ties
            rows = rows[sq <= np.partition(sq, limit)[limit] + SLACK]
        rows, exact = self._exact(rows, vector, max_distance)
        hits = [(self.ids[rows[k]], float(exact[k])) for k in np.argsort(exact, kind="stable")]
        return [(face, d) for face, d in hits if face != exclude][:limit]

    def within(self, vector: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """(rows, float64 distances) of every face within `radius` of `vector`, in no order."""
        return self._exact(self._candidates(vector, radius)[0], vector, radius)

    def _candidates(self, vector, radius):
        """Rows within `radius` by float32 distances (a little wider), and their squared distances."""
        n, cut = len(self.ids), radius**2 + SLACK
        # ‖x − q‖² = ‖x‖² − 2x·q + ‖q‖²: first one matrix-vector product over every face's prefix (in place:
        # at a million faces each temporary would be 4 MB more to write),
        q = vector @ self._axes
        sq = self._prefix[:n] @ q
        sq *= -2
        sq += self._prefix_sq[:n]
        rows = np.flatnonzero(sq <= cut - q @ q)
        # then over the whole descriptors of the faces that pass.
        sq = self._sq_norms[rows] - 2 * (self._matrix[rows] @ vector) + vector @ vector
        return rows[sq <= cut], sq[sq <= cut]

    def _exact(self, rows, vector, radius):
        exact = np.linalg.norm(self._matrix[rows].astype(np.float64) - vector, axis=1)
        return rows[exact <= radius], exact[exact <= radius]

    def _project(self, start, end):
        self._prefix[start:end] = self._matrix[start:end] @ self._axes
        self._prefix_sq[start:end] = np.einsum("ij,ij->i", self._prefix[start:end], self._prefix[start:end])

    def _arrays(self):
        return self._matrix, self._sq_norms, self._prefix, self._prefix_sq, self._labels


def _grown(array, capacity, n):
    """`array` with room for `capacity` rows; np.zeros leaves the new rows' pages untouched (not in RSS)."""
    grown = np.zeros((capacity, *array.shape[1:]), array.dtype)
    grown[:n] = array[:n]
    return grown


def _capacity(n):
    # Grow by a quarter: appends stay amortised O(1) and at most 25 % of the matrix is slack.
    return n + n // 4 + 1024
