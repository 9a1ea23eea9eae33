"""Grouping face descriptors into people: pure numpy, no database, no HTTP.

A re-cluster is constrained average linkage over a k-nearest-neighbour graph. Each face is linked to
its nearest neighbours within the cluster distance; clusters joined by a link merge, closest pair
first, while the RMS distance between their members stays within the cluster distance and no
cannot-link (two faces of one photo) forbids it. The RMS distance between two clusters needs no pairwise
distances: for squared Euclidean distances, mean ‖a − b‖² over a ∈ A, b ∈ B = ‖μA − μB‖² + σA² + σB².
"""
import numpy as np

NO_CLUSTER = -1
# Rows per block of an exact neighbour search: a 2,048 × n float32 block is 160 MB at n = 20,000.
BLOCK = 2048
# Faces per k-means cell above the exact limit: cells of ~2,000 keep each cell's search as cheap as one
# exact block; each face searches its 2 nearest cells, so neighbours across a cell border are found too.
CELL_SIZE = 2000
CELLS_SEARCHED = 2
KMEANS_ROUNDS = 8  # Lloyd iterations: the cells only bound the search, they need not converge


class Cancelled(Exception):
    """The store is closing: a background re-cluster stops between two rounds."""


def cluster(vectors, cannot_link, distance, neighbours, exact_limit, min_size, cancelled=None):
    """A cluster label per face (NO_CLUSTER for faces left alone).

    `cannot_link` is an (m, 2) array of face index pairs that never share a cluster. Clusters smaller
    than `min_size` are dropped.
    """
    edges = neighbour_graph(vectors, neighbours, distance, exact_limit)
    labels = agglomerate(vectors, edges, cannot_link, distance, cancelled)
    sizes = np.bincount(labels, minlength=len(labels))
    return np.where(sizes[labels] < min_size, NO_CLUSTER, labels)


def neighbour_graph(vectors, k, radius, exact_limit):
    """(e, 2) unique pairs i < j: each face's k nearest neighbours within `radius`."""
    if len(vectors) <= exact_limit:
        pairs = _knn(vectors, np.arange(len(vectors)), np.arange(len(vectors)), k, radius)
    else:
        pairs = _knn_in_cells(vectors, k, radius)
    pairs = np.sort(pairs, axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def _knn(vectors, queries, base, k, radius):
    """(query, neighbour) index pairs: each query's k nearest among `base` (itself excluded) within radius."""
    k = min(k, len(base) - 1)
    if k < 1:
        return np.zeros((0, 2), np.int64)
    found = []
    base_vectors = vectors[base]
    base_sq = np.einsum("ij,ij->i", base_vectors, base_vectors)
    for start in range(0, len(queries), BLOCK):
        q = queries[start:start + BLOCK]
        qv = vectors[q]
        sq = base_sq[None, :] - 2 * qv @ base_vectors.T + np.einsum("ij,ij->i", qv, qv)[:, None]
        sq[base[None, :] == q[:, None]] = np.inf  # a face is not its own neighbour
        nearest = np.argpartition(sq, k - 1, axis=1)[:, :k]
        close = np.take_along_axis(sq, nearest, axis=1) <= radius ** 2
        found.append(np.stack([np.repeat(q, k)[close.ravel()], base[nearest[close]]], axis=1))
    return np.concatenate(found)


def _knn_in_cells(vectors, k, radius):
    """Approximate k nearest neighbours: each face searches the faces of its nearest k-means cells."""
    centroids = _kmeans(vectors, max(2, len(vectors) // CELL_SIZE))
    sq = -2 * vectors @ centroids.T + np.einsum("ij,ij->i", centroids, centroids)[None, :]
    nearest_cells = np.argpartition(sq, CELLS_SEARCHED - 1, axis=1)[:, :CELLS_SEARCHED]
    home = np.argmin(sq, axis=1)
    found = []
    for cell in range(len(centroids)):
        queries = np.flatnonzero((nearest_cells == cell).any(axis=1))
        base = np.flatnonzero(home == cell)
        if len(base) > 1:
            found.append(_knn(vectors, queries, base, k, radius))
    return np.concatenate(found) if found else np.zeros((0, 2), np.int64)


def _kmeans(vectors, count, seed=0):
    rng = np.random.default_rng(seed)
    centroids = vectors[rng.choice(len(vectors), count, replace=False)].astype(np.float64)
    for _ in range(KMEANS_ROUNDS):
        home = np.argmin(-2 * vectors @ centroids.T.astype(np.float32) + (centroids ** 2).sum(1)[None, :], axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, home, vectors)
        counts = np.bincount(home, minlength=count)[:, None]
        centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
    return centroids.astype(np.float32)


def agglomerate(vectors, edges, cannot_link, distance, cancelled=None):
    """Merge linked clusters, closest pair first, while their RMS distance is within `distance`.

    Each round merges every pair of clusters that are each other's closest allowed neighbour (a
    reciprocal nearest-neighbour round, so a round is a few vectorised numpy passes over the links).
    """
    n = len(vectors)
    labels = np.arange(n)  # every face its own cluster, labelled by its index
    state = _ClusterState(vectors)
    links, cannot = _relabel(labels, edges, n), _relabel(labels, cannot_link, n)
    while len(links):
        if cancelled is not None and cancelled.is_set():
            raise Cancelled
        merges = _reciprocal_merges(state, links, cannot, distance, n)
        if not len(merges):
            break
        target = np.arange(n)
        target[merges[:, 1]] = merges[:, 0]
        state.merge(merges)
        labels = target[labels]
        links, cannot = _relabel(target, links, n), _relabel(target, cannot, n)
    return labels


def _relabel(labels, pairs, n):
    """Pairs of faces or clusters as unique pairs (a < b) of the clusters that now hold them."""
    if not len(pairs):
        return np.zeros((0, 2), np.int64)
    mapped = np.sort(labels[pairs], axis=1)
    mapped = mapped[mapped[:, 0] != mapped[:, 1]]
    keys = np.unique(mapped[:, 0] * n + mapped[:, 1])
    return np.stack([keys // n, keys % n], axis=1)


class _ClusterState:
    """Per cluster (indexed by its label): size, sum of vectors, sum of squared norms."""

    def __init__(self, vectors):
        self.sum = vectors.astype(np.float64)
        self.size = np.ones(len(vectors))
        self.sq = np.einsum("ij,ij->i", self.sum, self.sum)

    def rms_sq(self, a, b):
        """Mean squared distance between the members of clusters a and b."""
        mu_a, mu_b = self.sum[a] / self.size[a, None], self.sum[b] / self.size[b, None]
        var_a = self.sq[a] / self.size[a] - np.einsum("ij,ij->i", mu_a, mu_a)
        var_b = self.sq[b] / self.size[b] - np.einsum("ij,ij->i", mu_b, mu_b)
        return ((mu_a - mu_b) ** 2).sum(1) + var_a + var_b

    def merge(self, merges):
        keep, gone = merges[:, 0], merges[:, 1]
        self.size[keep] += self.size[gone]
        self.sum[keep] += self.sum[gone]
        self.sq[keep] += self.sq[gone]


def _reciprocal_merges(state, links, cannot, distance, n):
    """(keep, gone) pairs: linked clusters within `distance` that are each other's closest allowed link."""
    a, b = links[:, 0], links[:, 1]
    d = state.rms_sq(a, b)
    allowed = (d <= distance ** 2) & ~np.isin(a * n + b, cannot[:, 0] * n + cannot[:, 1])
    a, b, d = a[allowed], b[allowed], d[allowed]
    if not len(a):
        return np.zeros((0, 2), np.int64)
    best = np.full(n, -1)
    ends, order = np.concatenate([a, b]), np.tile(np.arange(len(a)), 2)
    by_distance = np.lexsort((order, np.concatenate([d, d]), ends))  # per cluster, its closest link first
    first = np.ones(len(ends), bool)
    first[1:] = ends[by_distance][1:] != ends[by_distance][:-1]
    best[ends[by_distance][first]] = order[by_distance][first]
    mutual = (best[a] == np.arange(len(a))) & (best[b] == np.arange(len(a)))
    return np.stack([a[mutual], b[mutual]], axis=1)


def match_people(labels, current):
    """Which existing person each new cluster continues: {cluster: person id}, clusters left out are new.

    By largest overlap: the (cluster, person) pair sharing the most faces first, each cluster and each
    person used once, so a person keeps its ID (and with it its name) when its membership changes.
    """
    both = (labels >= 0) & (current >= 0)
    if not both.any():
        return {}
    pairs, counts = np.unique(np.stack([labels[both], current[both]], axis=1), axis=0, return_counts=True)
    matched, used = {}, set()
    for k in np.argsort(-counts, kind="stable"):
        cluster_label, person = pairs[k].tolist()
        if cluster_label not in matched and person not in used:
            matched[cluster_label] = person
            used.add(person)
    return matched
