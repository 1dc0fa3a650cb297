"""``hwbench export``: results sent to Prometheus (a textfile or a Pushgateway), MLflow
or Weights & Biases (:mod:`hwbench.export`; docs/store.md)."""

from __future__ import annotations

import click

EXPORT_EPILOG = """\b
Targets:
  prometheus FILE   text exposition file for node_exporter's textfile
                    collector (written whole, atomically)
  pushgateway URL   Prometheus Pushgateway (job hwbench, instance = host)
  mlflow            a run per results file, a nested run per case
                    (pip install "hwbench[mlflow]"; --tracking-uri,
                    default ./mlruns)
  wandb             a run per results file (pip install "hwbench[wandb]";
                    offline unless --wandb-mode online)
\b
Examples:
  hwbench export results/ --to prometheus /var/lib/node_exporter/hwbench.prom
  hwbench export results/run.json --to pushgateway http://localhost:9091
"""


@click.command(epilog=EXPORT_EPILOG)
@click.argument("args", nargs=-1, required=True, metavar="RESULTS... [FILE|URL]")
@click.option("--to", "to", required=True, type=click.Choice(["prometheus", "pushgateway", "mlflow", "wandb"]),
              help="Where to send the results (FILE or URL after RESULTS for prometheus and pushgateway).")
@click.option("--job", default="hwbench", show_default=True, help="pushgateway: the job name.")
@click.option("--tracking-uri", metavar="URI", help="mlflow: tracking URI [default: ./mlruns, a local file store].")
@click.option("--experiment", default="hwbench", show_default=True, help="mlflow: experiment name.")
@click.option("--project", default="hwbench", show_default=True, help="wandb: project name.")
@click.option("--wandb-mode", type=click.Choice(["offline", "online"]), default="offline", show_default=True,
              help="wandb: offline writes ./wandb for `wandb sync` later; no network needed.")
def export(args: tuple[str, ...], to: str, job: str, tracking_uri: str | None, experiment: str, project: str,
           wandb_mode: str) -> None:
    """Export RESULTS files (or folders) to a monitoring or tracking tool. Latency,
    throughput, energy and power of every ok case; metric names in docs/store.md."""
    from pathlib import Path

    from ..errors import UserError
    from ..export import TARGETS
    from ..report.text import clean

    target = TARGETS.get(to)
    results, dest = list(args), None
    if target.dest:
        if len(results) < 2:
            raise click.UsageError(f"--to {to} needs RESULTS and then its {target.dest}")
        results, dest = results[:-1], results[-1]
    warnings: list[str] = []
    if any(Path(p).is_dir() for p in results):
        from ..store import load_cases

        df = load_cases(results, warn=warnings.append)
    else:
        from ..analysis.derive import load_results

        df = load_results(results, warn=warnings.append)
    for w in warnings:
        click.echo(f"hwbench: warning: {clean(w)}", err=True)
    if df.empty or not (df["status"] == "ok").any():
        raise UserError(f"{', '.join(results)}: no ok cases to export")
    options = {"job": job, "tracking_uri": tracking_uri, "experiment": experiment, "project": project,
               "wandb_mode": wandb_mode}
    click.echo(clean(target.send(df, dest, options)), err=True)


COMMANDS = (export,)
