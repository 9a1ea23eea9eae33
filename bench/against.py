"""facerec's photo pipeline against itself at another git revision: whether a change kept its speed.

`make bench ARGS="--parts against --against REV"`: the revision's code is exported (`git archive`) to a
temporary folder, and each round times `analyse_photo` with its default settings on the same photos as
part 1, in process, in a process of each version in turn (models loaded before the clock starts). The
median of each size class per round, then per class the median over rounds of each version and of the
ratio now / then (1.00: the same speed).
"""

import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # (not services.REPO: importing it imports this facerec)

CLASSES = (("all", 0, float("inf")), ("1-2.5 MP (1080p)", 1, 2.5), ("2.5-8 MP", 2.5, 8), (">= 8 MP", 8, float("inf")))


def against_bench(photos: list[tuple[Path, float]], revision: str, rounds: int) -> dict:
    """{"revision", "classes": {class: {"then_ms", "now_ms", "ratio", "rounds"}}} for `photos` [(path, MP)]."""
    with tempfile.TemporaryDirectory() as then:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(then, filter="data")
        listed = json.dumps([[str(p), mp] for p, mp in photos])
        times = {"then": [], "now": []}
        for r in range(rounds):
            for version, root in (("then", then), ("now", str(REPO))):
                timed = subprocess.run(
                    [sys.executable, __file__, root], input=listed, capture_output=True, text=True, check=True
                )
                times[version].append(json.loads(timed.stdout))
            print(f"against {revision}: round {r + 1} of {rounds} done", flush=True)
    classes = {}
    for label, low, high in CLASSES:
        medians = {
            version: [statistics.median(ms for mp, ms in run if low <= mp < high) for run in runs]
            for version, runs in times.items()
            if any(low <= mp < high for _, mp in photos)
        }
        if medians:
            classes[label] = {
                "then_ms": round(statistics.median(medians["then"]), 1),
                "now_ms": round(statistics.median(medians["now"]), 1),
                "ratio": round(statistics.median(n / t for n, t in zip(medians["now"], medians["then"])), 2),
                "rounds": [round(n / t, 2) for n, t in zip(medians["now"], medians["then"])],
            }
    return {"revision": revision, "classes": classes}


def print_against(report: dict) -> None:
    print(f"\nthe photo pipeline, in process, now against {report['revision']} (median ms; now / then):")
    for label, c in report["classes"].items():
        print(f"  {label:<20}{c['then_ms']:>8} {c['now_ms']:>8}   {c['ratio']:.2f} {tuple(c['rounds'])}")


def time_photos(root: str) -> None:
    """In a process of one version (its code at `root`): [(MP, ms)] of analyse_photo on the photos given
    as JSON on standard input, printed as JSON."""
    sys.path.insert(0, root)
    from facerec.vision import faces
    from facerec.vision.faces import Models, analyse_photo

    assert faces.__file__.startswith(root), f"{faces.__file__} is not the code at {root}"

    models = Models()
    timed = []
    for path, mp in json.loads(sys.stdin.read()):
        data = Path(path).read_bytes()
        start = time.perf_counter()
        analyse_photo(models, data)
        timed.append((mp, 1000 * (time.perf_counter() - start)))
    print(json.dumps(timed))


if __name__ == "__main__":
    time_photos(sys.argv[1])
