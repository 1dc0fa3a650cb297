"""A suite across several machines (``hwbench run --nnodes N --node-rank R
--rdzv-endpoint HOST:PORT --rdzv-id JOB``): every node runs the same suite, and every
parallel case is one torchrun group spanning all nodes (``world_size / nnodes`` ranks on
each), so the nodes go through the cases in lockstep.

* :class:`Nodes` -- the frozen description of the node's place (torch-free: the planner
  uses it to say which cases cannot span the nodes).
* :class:`Coordinator` -- a c10d ``TCPStore`` at the rendezvous endpoint, hosted by node
  0's hwbench process for the whole run. Every case's elastic agent meets the others'
  there (a rendezvous id of its own per case), so no agent has to host the store and a
  node that starts its next case early cannot meet a store that is about to close. The
  nodes also check there that they planned the same cases, and tell each other when one
  stops (Ctrl-C, SIGTERM), so the others do not wait for it at the next rendezvous.

Each node writes its own results file (its ranks, its collectors, its energy); readers
join the parts (:mod:`hwbench.merge`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from ..errors import UserError

PLAN_KEY = "hwbench/plan"
STOP_KEY = "hwbench/stop"
DONE_KEY = "hwbench/done"


def parse_endpoint(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets) -> (host, port); a UserError otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise UserError(f"--rdzv-endpoint: expected HOST:PORT with a port in 1..65535, got {value[:80]!r}")
    return host, int(port)


@dataclass(frozen=True)
class Nodes:
    """This machine's place in a multi-node run."""

    nnodes: int
    node_rank: int
    endpoint: str  # HOST:PORT, node 0's address
    job_id: str  # the same on every node (Slurm: $SLURM_JOB_ID)

    def __post_init__(self) -> None:
        if self.nnodes < 2:
            raise UserError(f"--nnodes: a multi-node run needs at least 2 nodes, got {self.nnodes}")
        if not 0 <= self.node_rank < self.nnodes:
            raise UserError(f"--node-rank: must be in 0..{self.nnodes - 1} for --nnodes {self.nnodes}, "
                            f"got {self.node_rank}")
        if not self.job_id or len(self.job_id) > 100 or not all(c.isalnum() or c in "._-" for c in self.job_id):
            raise UserError(f"--rdzv-id: 1 to 100 letters, digits, '.', '_' or '-', got {self.job_id[:80]!r}")
        parse_endpoint(self.endpoint)

    @property
    def host(self) -> str:
        return parse_endpoint(self.endpoint)[0]

    @property
    def port(self) -> int:
        return parse_endpoint(self.endpoint)[1]

    def nproc(self, world_size: int) -> int:
        """Ranks on each node for a group of ``world_size``."""
        return world_size // self.nnodes

    def requires(self, case) -> str | None:
        """Why ``case`` cannot run in this multi-node run, or None."""
        if case.parallelism == "none":
            return (f"single-process case: a multi-node run (--nnodes {self.nnodes}) runs parallel cases only; "
                    "run it with a plain `hwbench run` on each node")
        if case.world_size % self.nnodes:
            return (f"{case.parallelism}: world size {case.world_size} does not split evenly over "
                    f"{self.nnodes} nodes")
        if case.auto_batch:
            return ("batch_sizes = [\"auto\"] in a multi-node run: each node would search its own limit and the "
                    "nodes' cases would differ; give the batch sizes")
        return None

    def rdzv_id(self, case_id: str) -> str:
        """The rendezvous id of one case: the job's, and the case's own (agents of two
        cases never meet)."""
        return f"{self.job_id}-{hashlib.sha256(case_id.encode()).hexdigest()[:12]}"


def plan_digest(case_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(case_ids).encode()).hexdigest()


class Coordinator:
    """The run's c10d TCPStore (node 0 hosts it; the others connect, waiting up to
    ``timeout_s`` for node 0 to start)."""

    def __init__(self, nodes: Nodes, timeout_s: float = 600.0):
        from datetime import timedelta

        import torch.distributed as dist

        self.nodes = nodes
        self._last_check = 0.0
        self._stopped: str | None = None
        self._said = False
        self.timeout_s = timeout_s
        try:
            self.store = dist.TCPStore(nodes.host, nodes.port, world_size=None, is_master=nodes.node_rank == 0,
                                       timeout=timedelta(seconds=timeout_s), wait_for_workers=False)
        except (RuntimeError, ValueError, OSError) as e:
            what = "host the rendezvous store" if nodes.node_rank == 0 else "reach node 0's rendezvous store"
            raise UserError(f"--rdzv-endpoint {nodes.endpoint}: cannot {what} there: "
                            f"{str(e).splitlines()[0][:200]}") from None

    def agree(self, selected: list[str], pending: list[str]) -> list[str]:
        """Check that every node selected the same runnable cases in the same order (same
        suite file, ``--filter``, devices), then return the cases this node runs: every
        case that *any* node has not finished yet, in suite order. A resumed node may
        have finished a case another node lost (it stopped in between); the group needs
        every node's ranks, so that case runs again everywhere and replaces the earlier
        result."""
        import json

        digest = f"{len(selected)} {plan_digest(selected)}"
        rank = self.nodes.node_rank
        try:
            if rank == 0:
                self.store.set(PLAN_KEY, digest)
            else:
                theirs = self.store.get(PLAN_KEY).decode()
                if theirs != digest:
                    self.say_stop("its cases differ from node 0's")
                    raise UserError(
                        f"node {rank}: its cases differ from node 0's ({len(selected)} here, {theirs.split()[0]} "
                        "there, or in another order): every node must run the same suite file and --filter "
                        "on the same kind of devices")
            self.store.set(f"{PLAN_KEY}/todo/{rank}", json.dumps(pending))
            keys = [f"{PLAN_KEY}/todo/{r}" for r in range(self.nodes.nnodes)]
            self._wait(keys)
            todo = {cid for k in keys for cid in json.loads(self.store.get(k).decode())}
        except (RuntimeError, OSError) as e:
            raise UserError(f"--rdzv-endpoint {self.nodes.endpoint}: the nodes did not all publish their plans: "
                            f"{str(e).splitlines()[0][:200]}") from None
        return [cid for cid in selected if cid in todo]

    def _wait(self, keys: list[str]) -> None:
        """Wait for ``keys`` up to the store's timeout, giving up at once (a UserError)
        when another node says it stopped."""
        from datetime import timedelta

        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                self.store.wait(keys, timedelta(seconds=1))
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
            peer = self.stopped(every_s=0)
            if peer:
                raise UserError(f"node {self.nodes.node_rank}: stopped before the first case: {peer}")

    def say_stop(self, why: str) -> None:
        """Tell the other nodes this one stops (``why``: "SIGTERM", ...); the first
        reason any node said is the one they all read."""
        if self._said:
            return
        self._said = True
        try:  # only where no node said it before: the first stop's reason stands
            self.store.compare_set(STOP_KEY, "", f"node {self.nodes.node_rank}: {why}")
        except (RuntimeError, OSError):
            pass  # node 0 is gone: the others learn it from the store itself

    def stopped(self, every_s: float = 1.0) -> str | None:
        """Whether another node stopped (or node 0's store is gone), checked at most
        every ``every_s`` seconds."""
        if self._stopped is not None:
            return self._stopped
        now = time.monotonic()
        if now - self._last_check < every_s:
            return None
        self._last_check = now
        try:
            if self.store.check([STOP_KEY]):
                said = self.store.get(STOP_KEY).decode()
                if not said.startswith(f"node {self.nodes.node_rank}:"):
                    self._stopped = said
        except (RuntimeError, OSError) as e:
            self._stopped = f"node 0's rendezvous store is gone ({str(e).splitlines()[0][:120]})"
        return self._stopped

    def finish(self, timeout_s: float) -> None:
        """This node's run ended (done or stopped). Node 0 keeps the store up until
        every node said so (at most ``timeout_s``): a node still in its last case must
        not find the store gone."""
        from datetime import timedelta

        try:
            self.store.set(f"{DONE_KEY}/{self.nodes.node_rank}", "1")
            if self.nodes.node_rank == 0:
                keys = [f"{DONE_KEY}/{r}" for r in range(1, self.nodes.nnodes)]
                self.store.wait(keys, timedelta(seconds=max(timeout_s, 1.0)))
        except (RuntimeError, OSError):
            pass  # a node that never says so (killed): nothing more to wait for
