"""A synthetic fleet of results files: N copies of results/examples/*.json (taken in
turn), each with a new run id and dates one night apart, for the store's and the
readers' scale checks (docs/store.md, "Scale").

    python tests/perf/make_fleet.py DIR --runs 5000 [--halves]

--halves writes the runs into DIR/a and DIR/b (half each): `hwbench compare DIR/a DIR/b`
then compares two folders of runs. Files are written compactly (no indentation).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2025, 1, 1, 2, 0, tzinfo=timezone.utc)


def retime(doc: dict, i: int, seed: int = 0) -> dict:
    """``doc`` as run ``i`` of the fleet: a new run id and every date moved to night
    ``i`` (the run's own offsets between its dates are kept)."""
    created = datetime.fromisoformat(doc["created"])
    shift = START + timedelta(days=i) - created
    out = dict(doc, run_id=f"fleet{seed:02d}-{i:07d}")

    def move(s):
        return (datetime.fromisoformat(s) + shift).isoformat() if s else s

    out["created"] = move(doc["created"])
    out["updated"] = move(doc.get("updated"))
    out["segments"] = [dict(s, started=move(s["started"])) for s in doc["segments"]]
    return out


def make(folder: Path, runs: int, halves: bool = False, sources: list[Path] | None = None) -> list[Path]:
    """Write ``runs`` results files into ``folder`` (or its a/ and b/); returns them."""
    sources = sources or sorted((ROOT / "results" / "examples").glob("*.json"))
    docs = [(p.stem, json.loads(p.read_text(encoding="utf-8"))) for p in sources]
    out = []
    for i in range(runs):
        stem, doc = docs[i % len(docs)]
        where = folder / ("a" if i < runs // 2 else "b") if halves else folder
        where.mkdir(parents=True, exist_ok=True)
        p = where / f"{stem}-{i:06d}.json"
        p.write_text(json.dumps(retime(doc, i)), encoding="utf-8")
        out.append(p)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--halves", action="store_true", help="write into FOLDER/a and FOLDER/b")
    args = ap.parse_args()
    files = make(args.folder, args.runs, args.halves)
    print(f"wrote {len(files)} results files to {args.folder}")


if __name__ == "__main__":
    main()
