"""What real bundles' zip-based model files inflate to: the data behind the limits of
:mod:`featx.io.archive`.

For every bundle folder given, each zip file in it (``model.skops``, ``model.keras``,
the ``.npz`` arrays) is listed with its size, its members' declared total, the whole
file's inflation ratio, and its largest member (declared size, compressed size,
ratio). At the end, the largest ratio of a member over ``SMALL_MEMBER`` bytes and of a
whole file, against the limits in force.

    featx train ../shared/data/gtzan/features_30_sec.csv -m random-forest -o /tmp/b/rf
    python bench/bundle_archive_sizes.py /tmp/b/*
"""
from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

from featx.io.archive import MAX_MEMBER_RATIO, MAX_RATIO, MAX_TOTAL, SMALL_MEMBER


def describe(path: Path) -> dict:
    """Sizes of one zip file and its largest member."""
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
    declared = sum(m.file_size for m in members)
    compressed = sum(m.compress_size for m in members)
    big = [m for m in members if m.file_size > SMALL_MEMBER]
    largest = max(members, key=lambda m: m.file_size)
    return {"file": f"{path.parent.name}/{path.name}", "bytes": path.stat().st_size, "members": len(members),
            "declared": declared, "ratio": declared / max(compressed, 1),
            "largest": largest.filename, "largest_size": largest.file_size,
            "largest_ratio": largest.file_size / max(largest.compress_size, 1),
            "big_ratio": max((m.file_size / max(m.compress_size, 1) for m in big), default=0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    args = parser.parse_args()
    rows = [describe(p) for b in args.bundles for p in sorted(b.iterdir())
            if p.is_file() and zipfile.is_zipfile(p)]
    head = f"{'file':34} {'bytes':>11} {'members':>7} {'inflated':>11} {'ratio':>6}  largest member (bytes, ratio)"
    print(head)
    for r in rows:
        print(f"{r['file']:34} {r['bytes']:>11,} {r['members']:>7} {r['declared']:>11,} {r['ratio']:>6.2f}  "
              f"{r['largest']} ({r['largest_size']:,}, {r['largest_ratio']:.2f})")
    print(f"\nlargest ratio of a member over {SMALL_MEMBER:,} bytes: {max(r['big_ratio'] for r in rows):.2f}; "
          f"of a whole file: {max(r['ratio'] for r in rows):.2f}; largest inflated file: "
          f"{max(r['declared'] for r in rows):,} bytes")
    print(f"limits: a member over {SMALL_MEMBER:,} bytes {MAX_MEMBER_RATIO}, a whole file {MAX_RATIO} "
          f"(beyond {SMALL_MEMBER:,} bytes), "
          f"{MAX_TOTAL:,} bytes in all")


if __name__ == "__main__":
    main()
