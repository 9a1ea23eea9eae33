"""Grouping face descriptors into people: pure numpy, no database, no HTTP.

A re-cluster is constrained average linkage over a k-nearest-neighbour graph. Each face is linked to
its nearest neighbours within the cluster distance; clusters joined by a link are taken closest pair
first (by the RMS distance between their members, which needs no pairwise distances: mean ‖a − b‖²
over a ∈ A, b ∈ B = ‖μA − μB‖² + σA² + σB²), and merge when a large enough share of the pairs between
their members lies within the cluster distance and no cannot-link (two faces of one photo) forbids it.
A share, unlike the distance between the means, means the same whatever the clusters' sizes.

A share over a few faces says little (one odd photo of a person can have a third of its pairs with the
rest within the distance, one face of someone else as many), so a cluster of up to FEW faces also joins
a cluster of SPREAD_FACES or more when its faces lie no farther from that cluster's centre than the
cluster's own faces do, within a spread ratio (`spread_ratio`): the test of whether a face is a draw
from the cluster, which compares it with that person's own spread rather than one bound for everyone.
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
# The cross pairs that decide a merge: all of them up to 4,096, else up to 64 faces of the smaller
# cluster and 4,096 pairs in all, which estimate a share to within a few percent at any cluster size.
PAIRS = 4096
SAMPLE = 64
CHUNK = 65536  # cross pairs measured at once: two 32 MB blocks of vectors
# Up to this many faces a cluster joins by the spread ratio too (a share over them says little) ...
FEW = 3
# ... a cluster of at least this many: its spread measured to within about 20 % (the relative error of
# a spread over n faces in the 13 effective dimensions of docs/people.md is sqrt(2 / (13 (n - 1)))).
SPREAD_FACES = 5
# When the faces' links are used up, each cluster of 2 faces or more is linked to its 10 nearest
# clusters by centroid (`_cluster_links`), exactly up to 20,000 clusters, in k-means cells above.
CLUSTER_LINKS = 10
CLUSTER_EXACT = 20000


def cluster(
    vectors: np.ndarray,
    cannot_link: np.ndarray,
    distance: float,
    share: float,
    ratio: float,
    neighbours: int,
    exact_limit: int,
    min_size: int,
) -> np.ndarray:
    """A cluster label per face (NO_CLUSTER for faces left alone).

    `cannot_link` is an (m, 2) array of face index pairs that never share a cluster. Clusters smaller
    than `min_size` are dropped.
    """
    edges = neighbour_graph(vectors, neighbours, distance, exact_limit)
    labels = agglomerate(vectors, edges, cannot_link, distance, share, ratio)
    sizes = np.bincount(labels, minlength=len(labels))
    return np.where(sizes[labels] < min_size, NO_CLUSTER, labels)


def neighbour_graph(vectors: np.ndarray, k: int, radius: float, exact_limit: int) -> np.ndarray:
    """(e, 2) unique pairs i < j: each face's k nearest neighbours within `radius`."""
    if len(vectors) <= exact_limit:
        pairs = _knn(vectors, np.arange(len(vectors)), np.arange(len(vectors)), k, radius)
    else:
        pairs = _knn_in_cells(vectors, k, radius)
    return _unique_pairs(pairs, len(vectors))


def _knn(vectors, queries, base, k, radius):
    """(query, neighbour) index pairs: each query's k nearest among `base` (itself excluded) within radius."""
    k = min(k, len(base))  # a query in `base` finds itself at infinity, which no radius keeps
    if k < 1:
        return np.zeros((0, 2), np.int64)
    found = []
    base_vectors = vectors[base]
    base_sq = np.einsum("ij,ij->i", base_vectors, base_vectors)
    for start in range(0, len(queries), BLOCK):
        q = queries[start : start + BLOCK]
        qv = vectors[q]
        sq = base_sq[None, :] - 2 * qv @ base_vectors.T + np.einsum("ij,ij->i", qv, qv)[:, None]
        sq[base[None, :] == q[:, None]] = np.inf  # a face is not its own neighbour
        nearest = np.argpartition(sq, k - 1, axis=1)[:, :k]
        close = np.take_along_axis(sq, nearest, axis=1) <= radius**2
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
        home = np.argmin(-2 * vectors @ centroids.T.astype(np.float32) + (centroids**2).sum(1)[None, :], axis=1)
        counts = np.bincount(home, minlength=count)[:, None]
        sums = np.zeros_like(centroids)
        order = np.argsort(home, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts[:, 0])[:-1]])
        filled = counts[:, 0] > 0
        sums[filled] = np.add.reduceat(vectors[order], starts[filled], axis=0)
        centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
    return centroids.astype(np.float32)


def agglomerate(
    vectors: np.ndarray, edges: np.ndarray, cannot_link: np.ndarray, distance: float, share: float, ratio: float
) -> np.ndarray:
    """Merge linked clusters, closest pair first, when at least `share` of the pairs between their faces
    lie within `distance`, or the smaller has up to FEW faces, the larger at least SPREAD_FACES, and
    the smaller's faces lie within `ratio` of the larger's spread from its centre (`spread_ratio`).

    The order is by RMS distance between the clusters' faces (cheap, from centroids and spreads); the
    decision is the share of their cross pairs within `distance` (all of them, or a sample of PAIRS),
    which estimates how often a face of one and a face of the other look like one person, whatever the
    clusters' sizes. Each round merges every pair of clusters that are each other's closest open
    link and pass; a link that fails stays closed until one of its clusters changes.
    """
    n = len(vectors)
    labels = np.arange(n)  # every face its own cluster, labelled by its index
    state = _ClusterState(vectors)
    members = _Members(vectors, distance)
    cannot = _unique_pairs(cannot_link, n)
    links = _allowed(_unique_pairs(edges, n), cannot, n)
    d = state.distances_sq(links[:, 0], links[:, 1])
    closed = np.zeros(len(links), bool)
    while True:
        candidates = _reciprocal(links, d, closed, n)
        if not len(candidates):
            fresh = _cluster_links(state, labels, links, cannot, distance)
            if not len(fresh):
                break
            links = np.concatenate([links, fresh])
            d = np.concatenate([d, state.distances_sq(fresh[:, 0], fresh[:, 1])])
            closed = np.concatenate([closed, np.zeros(len(fresh), bool)])
            continue
        members.update(labels)
        pairs = links[candidates]
        passed = (members.shares(pairs, state.size) >= share) | (state.spread_ratios(pairs) <= ratio)
        closed[candidates[~passed]] = True
        merges = links[candidates[passed]]
        if not len(merges):
            continue
        target = np.arange(n)
        target[merges[:, 1]] = merges[:, 0]
        state.merge(merges)
        labels = target[labels]
        cannot = _unique_pairs(target[cannot], n)
        moved = np.zeros(n, bool)
        moved[merges.ravel()] = True
        moved = moved[links[:, 0]] | moved[links[:, 1]]
        fresh = _allowed(_unique_pairs(target[links[moved]], n), cannot, n)
        links = np.concatenate([links[~moved], fresh])
        d = np.concatenate([d[~moved], state.distances_sq(fresh[:, 0], fresh[:, 1])])
        closed = np.concatenate([closed[~moved], np.zeros(len(fresh), bool)])
    return labels


def _cluster_links(state, labels, links, cannot, radius):
    """New links to clusters of 2 faces or more: each cluster (a face alone too) to its CLUSTER_LINKS
    nearest of them by centroid within `radius`, those not linked yet and not kept apart.

    The faces' own links join only clusters that hold two faces near each other. A person whose faces
    fall into groups (photos decades apart, a beard) can have every face's nearest neighbours in its
    own group, so no link between the groups, however near they lie on average: the textbook, which
    compares every pair of clusters, joins them. The distance between two clusters' centroids is at
    most the mean distance between their faces (Jensen), so every pair the textbook at `radius` would
    join is linked here; the share then decides as for any link. So is an odd face of a person with no
    face of theirs within `radius` but within the spread ratio of their centre (a face alone has no
    link of its own then)."""
    n = len(labels)
    alive = np.unique(labels)
    big = np.flatnonzero(state.size[alive] >= 2)
    if not len(big) or len(alive) < 2:
        return np.zeros((0, 2), np.int64)
    if len(big) <= CLUSTER_EXACT:  # every cluster, a face alone too, to its nearest clusters of 2 or more
        near = _knn(state.centroid[alive], np.arange(len(alive)), big, CLUSTER_LINKS, radius)
    else:
        near = big[neighbour_graph(state.centroid[alive[big]], CLUSTER_LINKS, radius, CLUSTER_EXACT)]
    fresh = _allowed(_unique_pairs(alive[near], n), cannot, n)
    return fresh[~np.isin(fresh[:, 0] * n + fresh[:, 1], links[:, 0] * n + links[:, 1])]


def _unique_pairs(pairs, n):
    """Unique pairs (a < b), none of a node with itself."""
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    keys = np.sort(pairs[:, 0].astype(np.int64) * n + pairs[:, 1])
    keys = keys[np.diff(keys, prepend=-1) != 0]  # sorting beats np.unique's hashing here
    return np.stack([keys // n, keys % n], axis=1)


class _ClusterState:
    """Per cluster (indexed by its label): size, sum of vectors, sum of squared norms (float64, exact
    enough to merge), and from them its centroid (float32, for fast distances) and spread."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.sum = vectors.astype(np.float64)
        self.size = np.ones(len(vectors))
        self.sq = np.einsum("ij,ij->i", self.sum, self.sum)
        self.centroid = vectors.astype(np.float32)
        self.centroid_sq = self.sq.copy()
        self.spread = np.zeros(len(vectors))  # mean squared distance of the members to the centroid

    def distances_sq(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The mean squared distance between the members of clusters a and b."""
        dot = np.concatenate(
            [np.zeros(0)]
            + [
                np.einsum("ij,ij->i", self.centroid[a[s : s + CHUNK]], self.centroid[b[s : s + CHUNK]])
                for s in range(0, len(a), CHUNK)
            ]
        )  # in chunks: 1 M links at once would be 1 GB of gathered rows
        return np.maximum(self.centroid_sq[a] + self.centroid_sq[b] - 2 * dot, 0) + self.spread[a] + self.spread[b]

    def spread_ratios(self, pairs: np.ndarray) -> np.ndarray:
        """Per pair of clusters, the smaller's `spread_ratio` to the larger when the smaller has up to FEW
        faces and the larger at least SPREAD_FACES, else infinity."""
        small = self.size[pairs[:, 0]] > self.size[pairs[:, 1]]
        a, b = np.where(small, pairs[:, 1], pairs[:, 0]), np.where(small, pairs[:, 0], pairs[:, 1])
        judged = (self.size[a] <= FEW) & (self.size[b] >= SPREAD_FACES)
        a, b = a[judged], b[judged]
        ratios = np.full(len(pairs), np.inf)
        centres_sq = self.distances_sq(a, b) - self.spread[a] - self.spread[b]  # ‖μa − μb‖²
        ratios[judged] = spread_ratio(centres_sq + self.spread[a], self.spread[b], self.size[b])
        return ratios

    def merge(self, merges: np.ndarray) -> None:
        keep, gone = merges[:, 0], merges[:, 1]
        self.size[keep] += self.size[gone]
        self.sum[keep] += self.sum[gone]
        self.sq[keep] += self.sq[gone]
        mean = self.sum[keep] / self.size[keep, None]
        self.centroid[keep] = mean
        self.centroid_sq[keep] = np.einsum("ij,ij->i", mean, mean)
        self.spread[keep] = self.sq[keep] / self.size[keep] - self.centroid_sq[keep]


def spread_ratio(mean_sq: float | np.ndarray, spread: float | np.ndarray, size: int | np.ndarray) -> np.ndarray:
    """How far faces lie from the centre of a cluster of `size` faces, in units of how far its own lie:
    their mean squared distance to the centre over the mean a new face of the cluster would have,
    spread × (size + 1) / (size − 1), where `spread` is the cluster's own faces' mean squared distance to
    it (which underestimates a new face's: the centre is drawn towards the faces it is the mean of).
    About 1 for a face of the same person whatever the sizes; 2 to 5 for faces of another.
    """
    expected = spread * (np.asarray(size) + 1) / np.maximum(np.asarray(size) - 1, 1)
    return np.where(expected > 0, mean_sq / np.maximum(expected, 1e-12), np.inf)


def _allowed(links, cannot, n):
    """The links between clusters that no cannot-link keeps apart."""
    return links[~np.isin(links[:, 0] * n + links[:, 1], cannot[:, 0] * n + cannot[:, 1])]


def _reciprocal(links, d, closed, n):
    """Indices of the open links whose two clusters are each other's closest open link."""
    open_ = np.flatnonzero(~closed)
    a, b, d = links[open_, 0], links[open_, 1], d[open_]
    closest = np.full(n, np.inf)
    np.minimum.at(closest, a, d)
    np.minimum.at(closest, b, d)
    mutual = open_[(d == closest[a]) & (d == closest[b])]
    ends = links[mutual].ravel()
    if len(np.unique(ends)) < len(ends):  # equal distances: a cluster in two pairs; keep its first
        seen: set[int] = set()
        kept = []
        for k, (x, y) in zip(mutual.tolist(), links[mutual].tolist()):
            if x not in seen and y not in seen:
                kept.append(k)
                seen.update((x, y))
        mutual = np.array(kept, np.int64)
    return mutual


class _Members:
    """The faces of each cluster, each cluster's in one random order fixed at the start, so that its
    first SAMPLE faces are a random sample of it; and the share of cross pairs within a distance."""

    def __init__(self, vectors: np.ndarray, distance: float, seed: int = 0) -> None:
        self.vectors = np.ascontiguousarray(vectors, np.float32)
        self.sq = np.einsum("ij,ij->i", self.vectors, self.vectors)
        self.rank = np.random.default_rng(seed).permutation(len(vectors))
        self.cut = distance**2

    def update(self, labels: np.ndarray) -> None:
        self.order = np.argsort(labels.astype(np.int64) * len(labels) + self.rank)
        self.start = np.searchsorted(labels[self.order], np.arange(len(labels)))

    def shares(self, pairs: np.ndarray, size: np.ndarray) -> np.ndarray:
        """For each pair of clusters, the share of pairs (a face of one, a face of the other) within the
        distance: over all of them when the smaller has up to SAMPLE faces and they make up to PAIRS,
        else over a sample of them."""
        small = size[pairs[:, 0]] > size[pairs[:, 1]]
        a, b = np.where(small, pairs[:, 1], pairs[:, 0]), np.where(small, pairs[:, 0], pairs[:, 1])  # a: the smaller
        count_a = np.minimum(size[a], SAMPLE).astype(np.int64)
        count_b = np.minimum(size[b], PAIRS // count_a).astype(np.int64)
        counts = count_a * count_b
        pair = np.repeat(np.arange(len(pairs)), counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        face_a = self.order[self.start[a][pair] + offset // count_b[pair]]
        face_b = self.order[self.start[b][pair] + offset % count_b[pair]]
        within = np.empty(len(pair), bool)
        for s in range(0, len(pair), CHUNK):
            x, y = face_a[s : s + CHUNK], face_b[s : s + CHUNK]
            sq = self.sq[x] + self.sq[y] - 2 * np.einsum("ij,ij->i", self.vectors[x], self.vectors[y])
            within[s : s + CHUNK] = sq <= self.cut
        return np.bincount(pair, weights=within, minlength=len(pairs)) / counts


def match_people(labels: np.ndarray, current: np.ndarray) -> dict[int, int]:
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
