"""Experiment trackers: MLflow (``--to mlflow``) and Weights & Biases (``--to wandb``),
optional extras (``pip install "hwbench[mlflow]"`` / ``"hwbench[wandb]"``).

Each results file becomes one tracked run: its params (suite, run id, host, versions),
the results file as an artifact, and per ok case its parameters (the case identity)
and metrics (units in the names, as in the results frame). In MLflow each case is a
nested run under the file's run; in W&B (no nesting) the case metrics are the run's
summary keyed ``<case_id>/<metric>`` and a ``cases`` table. :func:`payloads` builds
what is sent, the same for both, and is what the tests check."""

from __future__ import annotations

import math
from typing import Any

from ..errors import UserError
from . import TARGETS, Target, need

RUN_PARAMS = ("suite", "run_id", "hostname", "created", "hwbench_version", "torch_version", "run_status")
CASE_PARAMS = ("model", "mode", "batch_size", "seq_len", "image_size", "gen_tokens", "precision", "backend", "device",
               "device_name", "threads", "variant", "parallelism", "world_size", "comm")
METRICS = ("latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean", "throughput_samples_per_s",
           "tokens_per_s", "energy_per_sample_j", "energy_j", "power_w_mean", "memory_peak_bytes", "mfu",
           "achieved_tflops", "first_iter_ms")


def _value(v):
    """A plain Python value, or None for a missing one."""
    import pandas as pd

    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return v


def payloads(df) -> list[dict[str, Any]]:
    """One entry per results file of the cases frame ``df``: ``name``, ``params``,
    ``artifact`` (the results file) and ``cases``: per ok case its ``name`` (case id),
    ``params`` and finite ``metrics``; missing values are left out."""
    out = []
    for path, g in df.groupby("results_file", sort=False):
        first = g.iloc[0]
        params = {k: _value(first.get(k)) for k in RUN_PARAMS}
        cases = []
        for r in g[g["status"] == "ok"].to_dict("records"):
            metrics = {}
            for k in METRICS:
                v = _value(r.get(k))
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    metrics[k] = float(v)
            cases.append({"name": r["case_id"], "params": {k: _value(r.get(k)) for k in CASE_PARAMS
                                                           if _value(r.get(k)) is not None},
                          "metrics": metrics})
        out.append({"name": f"{params['suite']} {params['run_id']}",
                    "params": {k: v for k, v in params.items() if v is not None},
                    "artifact": str(path), "cases": cases})
    return out


def _mlflow(df, dest: str | None, options: dict[str, Any]) -> str:
    from pathlib import Path

    import os

    mlflow = need("mlflow", "mlflow")
    uri = options.get("tracking_uri")
    if not uri:  # the default: a local file store, which MLflow 3 keeps only on request
        uri = Path("mlruns").absolute().as_uri()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(options.get("experiment") or "hwbench")
        runs = payloads(df)
        for run in runs:
            with mlflow.start_run(run_name=run["name"]):
                mlflow.log_params(run["params"])
                mlflow.set_tags({"hwbench.results_file": run["artifact"]})
                mlflow.log_artifact(run["artifact"])
                for case in run["cases"]:
                    with mlflow.start_run(run_name=case["name"], nested=True):
                        mlflow.log_params(case["params"])
                        mlflow.log_metrics(case["metrics"])
    except (OSError, mlflow.exceptions.MlflowException) as e:
        raise UserError(f"--to mlflow {uri}: {str(e).strip().splitlines()[0] if str(e).strip() else e}") from None
    return f"logged {len(runs)} run(s), {sum(len(r['cases']) for r in runs)} ok cases to MLflow at {uri}"


def _wandb(df, dest: str | None, options: dict[str, Any]) -> str:
    wandb = need("wandb", "wandb")
    mode = options.get("wandb_mode") or "offline"
    runs = payloads(df)
    try:
        for run in runs:
            r = wandb.init(project=options.get("project") or "hwbench", name=run["name"], config=run["params"],
                           mode=mode, reinit="create_new")
            table = wandb.Table(columns=["case_id", *sorted({k for c in run["cases"] for k in c["metrics"]})])
            for c in run["cases"]:
                r.summary.update({f"{c['name']}/{k}": v for k, v in c["metrics"].items()})
                table.add_data(c["name"], *(c["metrics"].get(k) for k in table.columns[1:]))
            r.log({"cases": table})
            art = wandb.Artifact(name=f"results-{run['params'].get('run_id', 'run')}", type="hwbench-results")
            art.add_file(run["artifact"])
            r.log_artifact(art)
            r.finish()
    except Exception as e:  # wandb raises its own Error classes and OSError: a one-line message either way
        raise UserError(f"--to wandb: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    return f"logged {len(runs)} run(s) to W&B ({mode})"


TARGETS.register(Target("mlflow", None, "mlflow", _mlflow, "MLflow: a run per results file, a nested run per case"))
TARGETS.register(Target("wandb", None, "wandb", _wandb, "Weights & Biases: a run per results file (offline by default)"))
