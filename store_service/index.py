"""The in-memory search index: every stored descriptor in one preallocated float32 matrix, searched exactly.

A query reads the stored descriptors once, so its cost is memory traffic: 51 MB at 100 k faces, 512 MB
at 1 M, more than this machine's memory moves in the 5 ms and 60 ms a query may take. So a first pass
reads only each face's PREFIX leading principal components, a quarter of the bytes. A projection never
lengthens a distance, so every face within the threshold passes it; the exact distance then decides
for the few that do. The search stays exact, whatever axes are used; principal ones keep the first pass
selective (at 0.36, a few hundred faces in a million pass it).
"""
import numpy as np

DIM = 128
PREFIX = 32
# float32 rounding moves a squared distance by ~1e-6 (descriptors are ~1 long): widen the first cut by
# more than that, then decide on distances computed in float64.
SLACK = 1e-5


class Index:
    def __init__(self):
        self._ids, self._row = [], {}
        self._matrix = np.zeros((_capacity(0), DIM), np.float32)
        self._axes = np.eye(DIM, PREFIX, dtype=np.float32)  # until there are faces to fit axes to
        self._prefix = np.zeros((_capacity(0), PREFIX), np.float32)
        self._prefix_sq = np.zeros(_capacity(0), np.float32)
        self._fitted_on = 0

    def __len__(self):
        return len(self._ids)

    def __contains__(self, face):
        return face in self._row

    def vector(self, face):
        return self._matrix[self._row[face]].copy()

    def add(self, ids, vectors):
        """Append faces (IDs not yet in the index) and their float32 descriptors."""
        n, end = len(self._ids), len(self._ids) + len(ids)
        if end > len(self._matrix):  # np.resize fills the new rows with copies; rows past n are never read
            self._matrix = np.resize(self._matrix, (_capacity(end), DIM))
            self._prefix = np.resize(self._prefix, (_capacity(end), PREFIX))
            self._prefix_sq = np.resize(self._prefix_sq, _capacity(end))
        self._matrix[n:end] = vectors
        self._project(n, end)
        self._row.update(zip(ids, range(n, end)))
        self._ids.extend(ids)
        if end >= 2 * self._fitted_on + 1024:  # refit as the faces double: amortised O(1) a face
            self.fit_axes()

    def remove(self, face):
        # Move the last row into the hole, so the live rows stay one contiguous block.
        i, last = self._row.pop(face), len(self._ids) - 1
        if i != last:
            moved = self._ids[last]
            self._matrix[i], self._prefix[i], self._prefix_sq[i] = self._matrix[last], self._prefix[last], self._prefix_sq[last]
            self._ids[i], self._row[moved] = moved, i
        self._ids.pop()

    def fit_axes(self):
        """The PREFIX principal axes of (a sample of) the stored descriptors, and every face's projection."""
        n = len(self._ids)
        sample = self._matrix[: n : max(1, n // 20_000)]
        if len(sample) > DIM:
            _, _, axes = np.linalg.svd(sample - sample.mean(axis=0), full_matrices=False)
            self._axes = np.ascontiguousarray(axes[:PREFIX].T)
        self._project(0, n)
        self._fitted_on = n

    def search(self, vector, max_distance, limit, exclude=None):
        """[(id, distance)] within `max_distance` of `vector`, nearest first, at most `limit`, without `exclude`."""
        n = len(self._ids)
        q = vector @ self._axes
        # ‖x − q‖² = ‖x‖² − 2x·q + ‖q‖²: one matrix-vector product over the live rows' prefixes.
        sq = self._prefix_sq[:n] - 2 * (self._prefix[:n] @ q) + q @ q
        candidates = np.flatnonzero(sq <= max_distance**2 + SLACK)
        exact = np.linalg.norm(self._matrix[candidates].astype(np.float64) - vector, axis=1)
        within = exact <= max_distance
        candidates, exact = candidates[within], exact[within]
        nearest = np.argsort(exact, kind="stable")[: limit + 1]  # one more, in case `exclude` is among them
        hits = [(self._ids[candidates[k]], float(exact[k])) for k in nearest]
        return [(face, d) for face, d in hits if face != exclude][:limit]

    def _project(self, start, end):
        self._prefix[start:end] = self._matrix[start:end] @ self._axes
        self._prefix_sq[start:end] = np.einsum("ij,ij->i", self._prefix[start:end], self._prefix[start:end])


def _capacity(n):
    # Grow by a quarter: appends stay amortised O(1) and at most 25 % of the matrix is slack.
    return n + n // 4 + 1024
