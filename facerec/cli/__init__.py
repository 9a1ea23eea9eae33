"""`facerec`: the command line. `facerec ingest PATH...` and `facerec export DIR` (docs/ingest.md).

A client of the two services over HTTP, like any other: it never imports them.
"""

import argparse
import os
import sys
from typing import NoReturn

from tqdm import tqdm

from .export import export
from .http import ServiceClient, Unreachable
from .ingest import Ingest, find_files, json_line, summary

# make run's addresses (facerec/service/config.py's DETECT_BIND and STORE_BIND).
DETECT_URL, STORE_URL = "http://127.0.0.1:5000", "http://127.0.0.1:5001"


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        default=os.environ.get("FACEREC_STORE", STORE_URL),
        help=f"the store service (default {STORE_URL}, or $FACEREC_STORE)",
    )
    common.add_argument(
        "--api-key",
        default=os.environ.get("FACEREC_API_KEY"),
        help="sent as X-API-Key to both services (default: $FACEREC_API_KEY)",
    )
    p = argparse.ArgumentParser(prog="facerec", description="Photos and videos in, a labelled face dataset out.")
    commands = p.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser(
        "ingest", parents=[common], help="send photos, folders and videos to the detect service"
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="photo or video files, and folders (walked)")
    ingest.add_argument(
        "--detect",
        default=os.environ.get("FACEREC_DETECT", DETECT_URL),
        help=f"the detect service (default {DETECT_URL}, or $FACEREC_DETECT)",
    )
    ingest.add_argument("--fps", type=positive, default=1.0, help="video frames sampled a second (default 1)")
    ingest.add_argument("--jobs", type=int, default=32, help="most requests in flight at once (default 32)")
    ingest.add_argument("--json", action="store_true", help="one JSON line per file on standard output")
    out = commands.add_parser("export", parents=[common], help="write the store's people as folders of face crops")
    out.add_argument("dir", metavar="DIR")
    out.add_argument(
        "--sources",
        default=".",
        metavar="ROOT",
        help="where relative source paths are found (default: the current folder)",
    )
    return p


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    store = ServiceClient(args.store, args.api_key)
    bar = None
    if sys.stderr.isatty():
        bar = tqdm(total=0, unit="photo" if args.command == "ingest" else "face", dynamic_ncols=True)
    try:
        if args.command == "ingest":
            return run_ingest(args, store, bar)
        return run_export(args, store, bar)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print("\nfacerec: interrupted; run the same command again to go on", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()


def unready(*services: ServiceClient) -> int | None:
    """Print why a service is not ready and return 2, or return None when all are."""
    for service in services:
        reason = service.unready()
        if reason:
            print(f"facerec: {reason}; is the service running (make run)?", file=sys.stderr)
            return 2
    return None


def run_ingest(args: argparse.Namespace, store: ServiceClient, bar: tqdm | None) -> int:
    detect = ServiceClient(args.detect, args.api_key)
    if unready(detect, store):
        return 2
    files = find_files(args.paths)
    faces = []

    def report(f):
        faces.append(f.faces)
        if args.json:
            print(json_line(f), flush=True)
        if bar is not None:
            if f.outcome == "failed":
                bar.write(f"failed: {f.path}: {f.reason}", file=sys.stderr)
            bar.set_postfix_str(f"files {len(faces)}/{len(files)}, faces {sum(faces)}")

    run = Ingest(detect, store, args.fps, max(1, args.jobs), report, bar)
    run.run(files)
    if bar is not None:
        bar.close()
    text, status = summary(files, run.stopped, run.busy)
    print(text, file=sys.stderr)
    return status


def run_export(args: argparse.Namespace, store: ServiceClient, bar: tqdm | None) -> int:
    if unready(store):
        return 2
    try:
        counts = export(store, args.dir, args.sources, bar)
    except (Unreachable, FileExistsError) as e:
        print(f"facerec export: {e}", file=sys.stderr)
        return 2
    if bar is not None:
        bar.close()
    print(
        f"{counts['faces']} faces exported to {args.dir}: {counts['people']} people, {counts['unknown']} faces"
        f" of no person; crops from the original files: {counts['original']}, from the store's thumbnails:"
        f" {counts['thumbnail']}, without a picture: {counts['missing']}",
        file=sys.stderr,
    )
    return 0


def entry() -> NoReturn:
    sys.exit(main())
