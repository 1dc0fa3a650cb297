"""``python -m hwbench.selfcheck --gpu | --cpu [--out DIR]`` (see :mod:`hwbench.selfcheck`)."""

from __future__ import annotations

import json
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from .verdicts import FAILED, NA, RAN, Verdict, failed_any


def default_out() -> Path:
    from ..results import safe_filename_part

    host = safe_filename_part(socket.gethostname(), fallback="host")
    return Path("results") / f"selfcheck-{host}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def run(kind: str, out: Path, progress) -> list[Verdict]:
    """Every path of ``kind`` (cuda / cpu), cheapest first, each isolated: one path's
    exception is its verdict, the others still run."""
    from . import paths

    out.mkdir(parents=True, exist_ok=True)
    cc = None
    if kind == "cuda":
        why, cc = paths.gpu_state()
        if why is not None:
            return [Verdict("CUDA GPU", FAILED, why)]
    steps = [
        ("timing", lambda: [paths.check_timing("cuda:0" if kind == "cuda" else "cpu")]),
        ("collectors", lambda: paths.check_energy(kind, cc=cc)),
    ]
    if kind == "cuda":
        steps.append(("UUID mapping", lambda: [paths.check_uuid()]))
    steps += [("probe", lambda: paths.check_probe(kind, out, progress)),
              ("suites", lambda: paths.run_suites(kind, out, progress))]
    verdicts: list[Verdict] = []
    for name, step in steps:
        progress(f"{name} ...")
        try:
            got = step()
        except Exception as e:  # noqa: BLE001 - a verdict, not a crash
            got = [Verdict(name, FAILED, f"{type(e).__name__}: {e}")]
        for v in got:
            progress(v.line())
        verdicts += got
    return verdicts


@click.command()
@click.option("--gpu", "kind", flag_value="cuda", help="The CUDA half, on the first NVIDIA GPU.")
@click.option("--cpu", "kind", flag_value="cpu", help="The CPU half.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for results, profile and verdicts.  [default: results/selfcheck-<host>-<time>]")
def main(kind: str | None, out_dir: Path | None) -> None:
    """Run every measuring path once, with small shapes, and print one verdict per path
    (ran / failed / n/a). Exit 0 when no path that applies failed, 1 otherwise."""
    if kind is None:
        raise click.UsageError("choose --gpu (the CUDA half) or --cpu (the CPU half)")
    out = out_dir or default_out()
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        click.echo(f"[{time.monotonic() - t0:5.0f} s] {msg}"[:80], err=True)

    click.echo(f"hwbench self-check ({'--gpu' if kind == 'cuda' else '--cpu'}) into {out}", err=True)
    verdicts = run(kind, out, progress)
    elapsed = time.monotonic() - t0
    doc = {"format": "hwbench-selfcheck", "kind": kind, "host": socket.gethostname(),
           "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "duration_s": round(elapsed, 1),
           "verdicts": [v.to_dict() for v in verdicts]}
    (out / "selfcheck.json").write_text(json.dumps(doc, indent=1) + "\n")
    for v in verdicts:
        click.echo(v.line())
    n = {s: sum(v.status == s for v in verdicts) for s in (RAN, FAILED, NA)}
    click.echo(f"{n[RAN]} ran, {n[FAILED]} failed, {n[NA]} not applicable in {elapsed:.0f} s; "
               f"written to {out}"[:200])
    sys.exit(1 if failed_any(verdicts) else 0)


if __name__ == "__main__":
    main()
