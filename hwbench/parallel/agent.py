"""The launcher of one parallel case on one machine: torch's elastic agent, as ``torchrun
--standalone --nproc-per-node N`` runs it (``elastic_launch``, c10d rendezvous on a free
local port, no restarts), started by :func:`hwbench.launch.run_group` in its own
session. In a multi-node run (``job.json`` has ``nodes``) it is what ``torchrun --nnodes
N --rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id ID`` runs on each node: it
joins the case's rendezvous in the store node 0's hwbench hosts
(:class:`hwbench.parallel.nodes.Coordinator`). It writes ``JOB_DIR/agent.json`` (:class:`~.report.AgentReport`): each failed
rank's exit code or signal, typed, instead of text to be parsed.

``python -m hwbench.parallel.agent JOB_DIR NPROC``
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path


def main(job_dir: str, nproc: int) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from .report import AgentReport

    # torchrun's default for several ranks per node, unless the job sets threads itself
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    nodes = json.loads(Path(job_dir, "job.json").read_text()).get("nodes")
    if nodes:
        # the store at the endpoint is node 0's hwbench process's: no agent hosts it
        config = LaunchConfig(
            min_nodes=nodes["nnodes"], max_nodes=nodes["nnodes"], nproc_per_node=nproc, run_id=nodes["rdzv_id"],
            rdzv_backend="c10d", rdzv_endpoint=nodes["endpoint"], max_restarts=0, monitor_interval=0.05,
            start_method="spawn", rdzv_configs={"is_host": False, "join_timeout": nodes["join_timeout_s"]},
        )
    else:
        config = LaunchConfig(
            min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"hwbench-{uuid.uuid4().hex[:8]}",
            rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.05,
            start_method="spawn",
        )
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "hwbench.parallel.rank", job_dir)
        out = AgentReport(status="ok")
    except ChildFailedError as e:
        failures = {rank: {"exitcode": f.exitcode, "signal": f.signal_name(), "timestamp": f.timestamp,
                           "pid": f.pid} for rank, f in e.failures.items()}
        out = AgentReport(status="failed", failures=failures)
    except Exception as e:  # noqa: BLE001 - rendezvous errors and the like
        out = AgentReport(status="failed", error=f"{type(e).__name__}: {e}"[:2000])
    Path(job_dir, "agent.json").write_text(out.model_dump_json())
    return 0 if out.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
