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
    """The store is closing: a background re-cluster stops between two steps (well under a second)."""


def cluster(vectors, cannot_link, distance, centroid_distance, neighbours, exact_limit, min_size, cancelled=None):
    """A cluster label per face (NO_CLUSTER for faces left alone).

    `cannot_link` is an (m, 2) array of face index pairs that never share a cluster. Clusters smaller
    than `min_size` are dropped.
    """
    edges = neighbour_graph(vectors, neighbours, distance, exact_limit, cancelled)
    labels = agglomerate(vectors, edges, cannot_link, distance, centroid_distance, cancelled)
    sizes = np.bincount(labels, minlength=len(labels))
    return np.where(sizes[labels] < min_size, NO_CLUSTER, labels)


def neighbour_graph(vectors, k, radius, exact_limit, cancelled=None):
    """(e, 2) unique pairs i < j: each face's k nearest neighbours within `radius`."""
    if len(vectors) <= exact_limit:
        pairs = _knn(vectors, np.arange(len(vectors)), np.arange(len(vectors)), k, radius, cancelled)
    else:
        pairs = _knn_in_cells(vectors, k, radius, cancelled)
    return _unique_pairs(pairs, len(vectors))


def _knn(vectors, queries, base, k, radius, cancelled=None):
    """(query, neighbour) index pairs: each query's k nearest among `base` (itself excluded) within radius."""
    k = min(k, len(base) - 1)
    if k < 1:
        return np.zeros((0, 2), np.int64)
    found = []
    base_vectors = vectors[base]
    base_sq = np.einsum("ij,ij->i", base_vectors, base_vectors)
    for start in range(0, len(queries), BLOCK):
        _stop_if(cancelled)
        q = queries[start:start + BLOCK]
        qv = vectors[q]
        sq = base_sq[None, :] - 2 * qv @ base_vectors.T + np.einsum("ij,ij->i", qv, qv)[:, None]
        sq[base[None, :] == q[:, None]] = np.inf  # a face is not its own neighbour
        nearest = np.argpartition(sq, k - 1, axis=1)[:, :k]
        close = np.take_along_axis(sq, nearest, axis=1) <= radius ** 2
        found.append(np.stack([np.repeat(q, k)[close.ravel()], base[nearest[close]]], axis=1))
    return np.concatenate(found)


def _knn_in_cells(vectors, k, radius, cancelled=None):
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
            found.append(_knn(vectors, queries, base, k, radius, cancelled))
    return np.concatenate(found) if found else np.zeros((0, 2), np.int64)


def _kmeans(vectors, count, seed=0):
    rng = np.random.default_rng(seed)
    centroids = vectors[rng.choice(len(vectors), count, replace=False)].astype(np.float64)
    for _ in range(KMEANS_ROUNDS):
        home = np.argmin(-2 * vectors @ centroids.T.astype(np.float32) + (centroids ** 2).sum(1)[None, :], axis=1)
        counts = np.bincount(home, minlength=count)[:, None]
        sums = np.zeros_like(centroids)
        order = np.argsort(home, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts[:, 0])[:-1]])
        filled = counts[:, 0] > 0
        sums[filled] = np.add.reduceat(vectors[order], starts[filled], axis=0)
        centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
    return centroids.astype(np.float32)


def agglomerate(vectors, edges, cannot_link, distance, centroid_distance, cancelled=None):
    """Merge linked clusters, closest pair first, while their RMS distance is within `distance` or
    their centroids within `centroid_distance`.

    Each round merges every pair of clusters that are each other's closest allowed neighbour (a
    reciprocal nearest-neighbour round: a few vectorised numpy passes over the links). Only the links
    of clusters that merged are measured again.
    """
    n = len(vectors)
    labels = np.arange(n)  # every face its own cluster, labelled by its index
    state = _ClusterState(vectors)
    links, cannot = _unique_pairs(edges, n), _unique_pairs(cannot_link, n)
    d, centroids = state.distances_sq(links[:, 0], links[:, 1])
    while len(links):
        _stop_if(cancelled)
        close = (d <= distance ** 2) | (centroids <= centroid_distance ** 2)
        merges = _reciprocal_merges(links[close], d[close], cannot, n)
        if not len(merges):
            break
        target = np.arange(n)
        target[merges[:, 1]] = merges[:, 0]
        state.merge(merges)
        labels = target[labels]
        moved = np.zeros(n, bool)
        moved[merges.ravel()] = True
        moved = moved[links[:, 0]] | moved[links[:, 1]]
        fresh = _unique_pairs(target[links[moved]], n)
        fresh_d, fresh_centroids = state.distances_sq(fresh[:, 0], fresh[:, 1])
        links = np.concatenate([links[~moved], fresh])
        d, centroids = np.concatenate([d[~moved], fresh_d]), np.concatenate([centroids[~moved], fresh_centroids])
        cannot = _unique_pairs(target[cannot], n)
    return labels


def _stop_if(cancelled):
    """Between two steps (a block of the neighbour search, a round of merges): stop when asked to."""
    if cancelled is not None and cancelled.is_set():
        raise Cancelled


def _unique_pairs(pairs, n):
    """Unique pairs (a < b), none of a node with itself."""
    if not len(pairs):
        return np.zeros((0, 2), np.int64)
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    keys = np.unique(pairs[:, 0].astype(np.int64) * n + pairs[:, 1])
    return np.stack([keys // n, keys % n], axis=1)


class _ClusterState:
    """Per cluster (indexed by its label): size, sum of vectors, sum of squared norms (float64, exact
    enough to merge), and from them its centroid (float32, for fast distances) and spread."""

    def __init__(self, vectors):
        self.sum = vectors.astype(np.float64)
        self.size = np.ones(len(vectors))
        self.sq = np.einsum("ij,ij->i", self.sum, self.sum)
        self.centroid = vectors.astype(np.float32)
        self.centroid_sq = self.sq.copy()
        self.spread = np.zeros(len(vectors))  # mean squared distance of the members to the centroid

    def distances_sq(self, a, b):
        """(mean squared distance between the members, squared distance between the centroids) of clusters a and b."""
        dot = np.einsum("ij,ij->i", self.centroid[a], self.centroid[b])
        centroids = np.maximum(self.centroid_sq[a] + self.centroid_sq[b] - 2 * dot, 0)
        return centroids + self.spread[a] + self.spread[b], centroids

    def merge(self, merges):
        keep, gone = merges[:, 0], merges[:, 1]
        self.size[keep] += self.size[gone]
        self.sum[keep] += self.sum[gone]
        self.sq[keep] += self.sq[gone]
        mean = self.sum[keep] / self.size[keep, None]
        self.centroid[keep] = mean
        self.centroid_sq[keep] = np.einsum("ij,ij->i", mean, mean)
        self.spread[keep] = self.sq[keep] / self.size[keep] - self.centroid_sq[keep]


def _reciprocal_merges(links, d, cannot, n):
    """(keep, gone) pairs: clusters that are each other's closest link, and no cannot-link between."""
    a, b = links[:, 0], links[:, 1]
    allowed = ~np.isin(a * n + b, cannot[:, 0] * n + cannot[:, 1])
    a, b, d = a[allowed], b[allowed], d[allowed]
    closest = np.full(n, np.inf)
    np.minimum.at(closest, a, d)
    np.minimum.at(closest, b, d)
    mutual = (d == closest[a]) & (d == closest[b])
    merges = np.stack([a[mutual], b[mutual]], axis=1)
    if len(np.unique(merges)) < merges.size:  # equal distances: a cluster in two pairs; keep its first
        merges = _first_pairs(merges)
    return merges


def _first_pairs(merges):
    seen, kept = set(), []
    for keep, gone in merges.tolist():
        if keep not in seen and gone not in seen:
            kept.append((keep, gone))
            seen.update((keep, gone))
    return np.array(kept, np.int64).reshape(-1, 2)


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
