"""Serving under load: MLPerf LoadGen scenarios, arrival processes, continuous batching
for generation, SLO rules and the capacity search (docs/serving.md).

Pure parts (:mod:`.slo`, :mod:`.arrivals`, :mod:`.capacity`) import neither torch nor
LoadGen; the worker side (:mod:`.sut`, :mod:`.generation`, :mod:`.run`) runs inside a
case's worker process.
"""

SCENARIOS = ("single_stream", "multi_stream", "server", "offline")
ARRIVALS = ("poisson", "constant")


def is_serving(case) -> bool:
    """A case served under load (a LoadGen scenario, or generation at a request rate)."""
    return case.scenario != "none" or case.arrival != "none"


def keep_logs(result, out_path):
    """A finished case's result with its LoadGen log folders moved beside the results
    file (``<results stem>.loadgen/<case>/pointN``) and named relative to it; other
    results unchanged. Called by the runner after each case."""
    import re
    import shutil
    from pathlib import Path

    m = result.measurement
    if m is None or m.serving is None or not any(p.loadgen_log for p in m.serving.points):
        return result
    out_path = Path(out_path)
    rel_root = Path(f"{out_path.stem}.loadgen") / re.sub(r"[^A-Za-z0-9_.@-]+", "_", result.case_id)
    dest_root = out_path.parent / rel_root
    if dest_root.exists():
        shutil.rmtree(dest_root)
    dest_root.mkdir(parents=True)
    points, tmp = [], None
    for i, p in enumerate(m.serving.points):
        if p.loadgen_log and Path(p.loadgen_log).is_absolute() and Path(p.loadgen_log).is_dir():
            tmp = Path(p.loadgen_log).parent
            shutil.move(p.loadgen_log, dest_root / f"point{i}")
            p = p.model_copy(update={"loadgen_log": str(rel_root / f"point{i}")})
        points.append(p)
    if tmp is not None and tmp.name.startswith("hwbench-loadgen-"):
        shutil.rmtree(tmp, ignore_errors=True)
    serving = m.serving.model_copy(update={"points": points})
    return result.model_copy(update={"measurement": m.model_copy(update={"serving": serving})})
