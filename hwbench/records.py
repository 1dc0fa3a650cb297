"""The typed, frozen records of a run: what a results file holds.

Everything here is raw data or a fact with its source; statistics, throughput, MFU and
peaks are *derived at load time* (:mod:`hwbench.analysis.derive`), so an improved formula
re-derives old files. Records are frozen pydantic models: the runner builds a new
:class:`RunRecord` after each case (``model_copy``) instead of mutating a shared dict,
and collectors return values that :func:`assemble` puts into a :class:`CaseResult`.

Schema history: docs/schema-history.md (bump ``SCHEMA_VERSION`` and add an upgrader in
:mod:`hwbench.results` for every change that is not a new optional field with a default,
with a golden file of the old version in ``tests/golden/``; add a bullet there for every
new field).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from Python 3.12

SCHEMA_VERSION = 4
FORMAT = "hwbench-results"

# JSON numbers are unbounded; a results file is data from outside. Bounded integers keep
# a hostile or corrupted file from reaching pandas / numpy as an overflowing value.
Int = Annotated[int, Field(ge=-(2**62), le=2**62)]
Count = Annotated[int, Field(ge=0, le=2**62)]
Float = Annotated[float, Field(allow_inf_nan=False)]
# Physical bounds of what a worker can measure, so that no figure derived from a file
# (throughput = batch / time, FLOP/s = FLOPs x throughput, ms = s x 1000) overflows:
MIN_TIME_S = 1e-12  # one timed iteration: a picosecond, far below any clock's resolution
MAX_TIME_S = 7 * 24 * 3600.0  # ... at most a week, the longest timeout_s a suite may set
MAX_WINDOW_S = 1e9  # whole windows (warmup, all repeats): about 30 years
# FLOPs of one sample: a million times a trillion-parameter model's training step on a
# million-token sequence (6 x 1e12 x 1e6 = 6e18)
MAX_FLOPS_PER_SAMPLE = 1e24
Seconds = Annotated[float, Field(ge=MIN_TIME_S, le=MAX_TIME_S, allow_inf_nan=False)]  # one measured iteration
Window = Annotated[float, Field(ge=0, le=MAX_WINDOW_S, allow_inf_nan=False)]
FlopCount = Annotated[float, Field(ge=0, le=MAX_FLOPS_PER_SAMPLE, allow_inf_nan=False)]
# the energy of one case's window: a gigawatt for ten days (~1e15 J)
MAX_ENERGY_J = 1e15
Joules = Annotated[float, Field(ge=0, le=MAX_ENERGY_J, allow_inf_nan=False)]
Text = Annotated[str, Field(max_length=100_000)]

Status = Literal["ok", "skipped", "failed", "oom", "timeout"]
RunStatus = Literal["running", "complete", "partial", "interrupted"]
# From this many repeats on, each repeat runs in its own fresh worker process (the
# runner). Within one process, iteration noise understates run-to-run drift (a public CI
# study found 2.8 % within a run against 14.8 % between jobs); fresh processes put
# allocation, cache and thread placement back into the noise, and comparisons (hwbench
# compare) then use the per-repeat medians as their unit. Below it, repeats share one
# worker (cheaper). A results file's repeats are read by this rule.
PROCESS_ISOLATED_REPEATS = 3

# Best first: when several sources measure one device, a case's energy comes from the
# first of these that has a value for its window (hwbench.collectors); each device kind
# declares its own (hwbench.devices: Accelerator.energy_sources). Counters before
# integrated power, measurements before the estimate. A source not listed ranks last
# but one (only "estimated" is weaker).
ENERGY_SOURCE_ORDER = ("nvml_counter", "amdsmi_counter", "hwmon_counter", "hlml_counter", "nvml_power", "amdsmi_power",
                       "hlml_power", "rapl", "estimated")
# a source name: lower-case words joined by "_" (schema 4: open, not a fixed list)
EnergySource = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


def energy_source_rank(source: str) -> int:
    """Position of ``source`` in ENERGY_SOURCE_ORDER (lower is better); an unlisted source
    ranks just above "estimated"."""
    if source in ENERGY_SOURCE_ORDER:
        i = ENERGY_SOURCE_ORDER.index(source)
        return i if source != "estimated" else len(ENERGY_SOURCE_ORDER)
    return len(ENERGY_SOURCE_ORDER) - 1


class _Record(BaseModel):
    """Frozen, strict about unknown keys, no NaN / inf (stored as null, see assemble)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, ser_json_inf_nan="null")


class Flag(_Record):
    """A measurement-quality warning: what (``flag``) and why, with the numbers (``detail``)."""

    flag: Annotated[str, Field(max_length=200)]
    detail: Text = ""


# ---------------------------------------------------------------- the environment
class AcceleratorInfo(_Record):
    """One accelerator as its kind's vendor library (NVML, AMD SMI, ...) or torch
    described it (schema 4; schema 3's ``GpuInfo`` upgraded with kind "cuda")."""

    model_config = ConfigDict(extra="allow")  # vendor facts vary by driver; kept as given

    index: Count
    name: Text
    kind: Text = "cuda"  # the device kind (hwbench.devices): cuda, rocm, xpu, xla, hpu
    vendor: Text | None = None  # nvidia, amd, intel, google, intel-habana
    arch: Text | None = None  # in the kind's own terms: "sm_90", "gfx942"
    uuid: Text | None = None
    torch_device: Text | None = None  # "<kind>:N" as results name it in this process, None if not visible
    memory_total_bytes: Count | None = None
    compute_capability: list[Count] | None = None  # CUDA only
    power_limit_w: Float | None = None
    pci_bus_id: Text | None = None
    driver_version: Text | None = None


GpuInfo = AcceleratorInfo  # the schema-3 name


class StorageInfo(_Record):
    """The storage behind a folder the run writes to (:mod:`hwbench.io.storage`); null
    where the kernel does not say."""

    role: Literal["results", "scratch"]
    path: Text
    mount_point: Text | None = None
    fs_type: Text | None = None  # from /proc/mounts: ext4, xfs, overlay, tmpfs, nfs4, ...
    device: Text | None = None  # the mount's source (/dev/nvme0n1p2, overlay, ...)
    rotational: bool | None = None  # /sys/class/block/<dev>/queue/rotational; null: not a listed block device


class Environment(_Record):
    """Where the numbers came from (docs/architecture.md, rule 7). Every field but the host name is
    optional: what could not be asked stays null."""

    model_config = ConfigDict(extra="allow")  # newer hwbench may record more facts

    hostname: Text
    os: Text | None = None
    platform: Text | None = None
    machine: Text | None = None
    cpu_model: Text | None = None
    cpu_cores_physical: Count | None = None
    cpu_cores_logical: Count | None = None
    cpu_freq_max_mhz: Float | None = None
    cpu_freq_max_source: Text | None = None
    cpu_governor: Text | None = None  # cpufreq governor(s), e.g. "performance"; null where not exposed
    cpu_boost: bool | None = None  # turbo / boost enabled
    cpu_flags: list[Text] = []
    cpu_affinity: Count | None = None
    # the CPU identity the microarchitecture table is keyed by (hwbench.cpu_uarch)
    cpu_vendor_id: Text | None = None  # x86 vendor_id, e.g. "GenuineIntel"
    cpu_family: Count | None = None
    cpu_model_id: Count | None = None
    cpu_stepping: Count | None = None
    cpu_implementer: Text | None = None  # Arm, lower-case hex, e.g. "0x41"
    cpu_part: Text | None = None  # Arm, lower-case hex parts, comma-joined on hybrid chips
    cpu_freq_all_core_mhz: Float | None = None  # declared (HWBENCH_CPU_ALL_CORE_MHZ)
    cpu_freq_all_core_source: Text | None = None
    memory_total_bytes: Count | None = None
    python_version: Text | None = None
    python_implementation: Text | None = None
    torch_version: Text | None = None
    torch_cuda_version: Text | None = None
    torch_num_threads: Count | None = None
    hwbench_version: Text | None = None
    hwbench_git_commit: Text | None = None
    cuda_visible_devices: Text | None = None
    accelerators: list[AcceleratorInfo] = []
    driver_version: Text | None = None
    cuda_driver_version: Text | None = None
    storage: list[StorageInfo] = []  # the folders a run writes to (results, scratch)


# What must match to continue a run in the same file: the machine...
MACHINE_KEYS = ("hostname", "cpu_model")
# ... and the software that produced the numbers (a change is refused unless allowed).
SOFTWARE_KEYS = ("torch_version", "torch_cuda_version", "hwbench_version", "python_version", "driver_version")


# ---------------------------------------------------------------- collectors
class IdleBaseline(_Record):
    """Power with no case running, measured once per segment after the workers are ready."""

    duration_s: Float
    power_w: dict[str, Float] = {}  # per device ("cpu", "cuda:0"), W
    energy_source: dict[str, EnergySource] = {}
    cpu_util_pct: Float | None = None  # system CPU load over the baseline (CPU-time delta)
    flags: list[Flag] = []


class CollectorsInfo(_Record):
    """Which samplers ran in a segment, which were unavailable and why."""

    interval_s: Float
    active: list[Text] = []
    unavailable: dict[str, Text] = {}
    info: dict[str, dict[str, Any]] = {}


class SamplerResult(_Record):
    """One sampler over one case: summaries over the timed window (units in the keys),
    and optionally the whole time series as columns (``t_s`` relative to the window start)."""

    device: Text | None = None
    n_samples: Count = 0
    summary: dict[str, Float] = {}
    info: dict[str, Any] = {}
    samples: dict[str, list[Float | None]] | None = None


class Energy(_Record):
    """Energy over a case's timed window, with its source. ``estimated`` is not a measurement."""

    energy_j: Joules
    energy_source: EnergySource
    energy_window_s: Window
    idle_power_w: Float | None = None
    energy_j_power_integrated: Float | None = None  # GPU cross-check of the counter
    estimate_basis: Text | None = None  # for "estimated": TDP and load used

    @classmethod
    def total(cls, parts: list[tuple[str, "Energy"]]) -> "Energy":
        """The energy of several devices or machines over the same window (``parts``:
        (label, energy) pairs, e.g. ("cuda:1", ...) or ("node 1", ...)): joules, idle
        power and the cross-check summed (the last two only where every part has them);
        the window the longest; the weakest source names the total (a counter and an
        estimate together read as "estimated"); estimate bases joined with their labels."""
        es = [e for _, e in parts]
        idle = [e.idle_power_w for e in es]
        cross = [e.energy_j_power_integrated for e in es]
        basis = "; ".join(f"{label}: {e.estimate_basis}" for label, e in parts if e.estimate_basis)
        return cls(
            energy_j=sum(e.energy_j for e in es),
            energy_source=max((e.energy_source for e in es), key=energy_source_rank),
            energy_window_s=max(e.energy_window_s for e in es),
            idle_power_w=sum(idle) if all(x is not None for x in idle) else None,
            energy_j_power_integrated=sum(cross) if all(x is not None for x in cross) else None,
            estimate_basis=basis or None,
        )


# ---------------------------------------------------------------- one case
class CaseIdentity(_Record):
    """The case as planned (mirrors :class:`hwbench.case.Case`)."""

    model: Annotated[str, Field(max_length=200)]
    mode: Annotated[str, Field(max_length=50)]
    batch_size: Count
    precision: Annotated[str, Field(max_length=50)]
    backend: Annotated[str, Field(max_length=50)]
    device: Annotated[str, Field(max_length=50)]
    threads: Count | None = None
    seq_len: Count | None = None
    image_size: Count | None = None
    variant: Annotated[str, Field(max_length=100)] = "none"
    gen_tokens: Count | None = None
    parallelism: Annotated[str, Field(max_length=50)] = "none"
    world_size: Count = 1
    comm: Annotated[str, Field(max_length=50)] = "none"
    num_workers: Count | None = None
    pin_memory: bool | None = None
    prefetch_factor: Count | None = None
    persistent_workers: bool | None = None
    checkpointer: Annotated[str, Field(max_length=50)] | None = None
    scenario: Annotated[str, Field(max_length=50)] = "none"
    load: Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)] | None = None
    arrival: Annotated[str, Field(max_length=50)] = "none"
    latency_slo_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    ttft_slo_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    tpot_slo_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    instances: Annotated[int, Field(ge=1, le=1024)] = 1  # LoadGen scenario cases: model replicas in the SUT


class LoadPoint(_Record):
    """One load point of a serving case (hwbench.serving): what was offered, what was
    served, and every query's latency (s) so percentiles can be recomputed."""

    offered_qps: Float | None = None  # Server / generation: the rate asked for; else None
    achieved_qps: Float  # samples completed per second (a query is one sample, except MultiStream's 8)
    duration_s: Window  # the LoadGen test (or generation run), s
    latencies_s: list[Window]  # per query (Offline: per sample; MultiStream: per query), scheduled issue to done
    loadgen_log: Text | None = None  # folder of LoadGen's logs, relative to the results file
    loadgen_summary: dict[str, Text] = {}  # mlperf_log_summary.txt's "key : value" lines
    mean_batch: Float | None = None  # samples per forward pass the SUT ran (generation: requests per decode forward)
    slo_met: bool | None = None  # as the worker judged it (the capacity search's probes)
    # generation: per request, time to first token, time per output token after the
    # first, the largest gap between two tokens, and tokens generated
    ttft_s: list[Window] | None = None
    tpot_s: list[Window] | None = None
    itl_max_s: list[Window] | None = None
    output_tokens: list[Count] | None = None
    # LoadGen scenarios with several model instances: forward passes each instance ran
    instance_batches: list[Count] | None = None


class Serving(_Record):
    """A serving case's load points; a Server capacity search's probes in the order run."""

    scenario: Annotated[str, Field(max_length=50)]
    points: list[LoadPoint] = []
    capacity_qps_at_slo: Float | None = None  # capacity search only
    capacity_rule: Text = ""  # how the search stopped
    # full batches back to back, no load (the search's upper bound), on every instance at once
    fixed_batch_samples_per_s: Float | None = None
    instance_threads: Count | None = None  # intra-op threads each instance ran with (CPU); None: not divided
    # generation: "batched" = one decode forward per iteration for every running request
    # (a slot KV cache); null in earlier files, whose requests decoded one forward each
    decode_batching: Literal["batched"] | None = None


class Measurement(_Record):
    """The raw timing of one case, seconds. Statistics are derived from these at load."""

    # one list per repeat, one value per timed iteration; each MIN_TIME_S..MAX_TIME_S (a
    # negative or zero time is a broken clock or a corrupted file, and would read as a
    # speed-up; a denormal one gives an infinite throughput)
    raw_times_s: list[list[Seconds]]
    first_iter_s: Window  # the very first call (compile backends: trace + compile)
    warmup_s: Window  # the whole warmup, first call included
    measured_s: Window  # length of the timed window, all repeats
    # generate: per timed iteration, time to first token and decode time, same clock
    ttft_s: list[Window] | None = None
    decode_s: list[Window] | None = None
    # statistics stored by schema <= 2 whose raw data was never kept (e.g. ttft_ms_p50)
    legacy_summary: dict[str, Float] | None = None
    # "process": each repeat (each list of raw_times_s) was measured by its own fresh worker
    # process, so the repeats differ by process-level noise too (allocation, page and cache
    # placement, thread pinning); "iteration": all repeats ran in one worker (the default).
    repeat_isolation: Literal["process", "iteration"] = "iteration"
    # serving cases: the load points (raw_times_s then holds the SUT's forward passes)
    serving: Serving | None = None


class Accuracy(_Record):
    """Output deviation from the fp32 eager reference on the same inputs."""

    max_abs_error: Float | None
    rel_l2_error: Float | None
    accuracy_model: Literal["compiled", "eager"]


class Facts(_Record):
    """What the worker knows about the case besides time."""

    params: Count
    flops_per_sample: FlopCount  # analytic, per sample (generate: per generated sequence)
    flops_per_sample_counted: FlopCount | None = None  # torch.utils.flop_counter, one step
    flops_counted_reason: Text | None = None  # why the counted figure is empty
    threads_used: Count | None = None  # CPU intra-op threads actually used
    accuracy: Accuracy | None = None
    changes: dict[str, Count] = {}  # what a variant / precision rewrote (layers)
    memory_peak_bytes: Count | None = None  # device allocator peak (CUDA)
    memory_reserved_peak_bytes: Count | None = None
    host_rss_peak_bytes: Count | None = None  # the worker's lifetime peak
    active_params: Count | None = None  # parameters per token (MoE: top-k experts only)
    # MoE: tokens routed to each expert, one list per MoE layer, summed over the timed
    # iterations (each token counts once for each of its top-k experts)
    router_tokens_per_expert: list[list[Count]] | None = None
    student_model: Annotated[str, Field(max_length=200)] | None = None  # distill: the student "family:size"
    student_params: Count | None = None
    # parallel cases (hwbench.parallel): the group's samples per step, and per-rank figures
    global_batch_size: Count | None = None
    rank_memory_peak_bytes: list[Count] | None = None  # device allocator peak per rank (CUDA)
    rank_host_rss_peak_bytes: list[Count] | None = None  # each rank process's lifetime peak RSS
    comm_s_per_step: Float | None = None  # busy time of collectives per step, slowest rank
    comm_bytes_per_step: Float | None = None  # bytes in collectives' inputs per step, largest rank
    comm_measured_by: Text | None = None  # how the two above were measured
    ranks: list[Count] | None = None  # the global ranks these facts hold, in the rank_* lists' order
    # comm (gradient compression) and overlap: communication time per step not covered by
    # compute (largest rank), and the parameters' relative L2 deviation after
    # param_rel_l2_steps steps from the same steps run uncompressed (largest rank)
    comm_exposed_s_per_step: Float | None = None
    param_rel_l2_vs_none: Float | None = None
    param_rel_l2_steps: Count | None = None
    # data cases (hwbench.io.data): the files, what the loader read per sample, and over
    # the timed window the consumer's wait on the loader and the loader's CPU time
    data_files: Count | None = None
    data_bytes_on_disk: Count | None = None
    data_bytes_per_sample: Float | None = None
    data_loader_wait_s: Window | None = None
    data_loader_cpu_s: Window | None = None
    data_pipeline: Text | None = None
    # checkpoint cases (hwbench.io.checkpoint): bytes on disk, load times (the save times
    # are measurement.raw_times_s), async saves' blocked times, what a load read from
    checkpoint_bytes: Count | None = None
    checkpoint_files: Count | None = None
    checkpoint_load_s: list[Seconds] | None = None
    checkpoint_blocked_s: list[Window] | None = None
    checkpoint_load_from: Text | None = None
    checkpoint_shard_bytes: list[Count] | None = None  # sharded cases: each rank's shard file, bytes
    scratch_fs_type: Text | None = None  # the filesystem of the case's scratch folder


class Overheads(_Record):
    """Where a case's wall time went, seconds."""

    wall_s: Float | None = None  # launch to result
    fixed_cost_s: Float | None = None  # launch to first timed iteration
    launch_s: Float | None = None  # fork to worker code running
    setup_s: Float | None = None  # model build, inputs, precision, backend
    warmup_s: Float | None = None  # warmup iterations


class CaseResult(_Record):
    """One case of one run. ``status`` ok: ``measurement`` and ``facts`` are set."""

    case_id: Annotated[str, Field(max_length=1000)]
    case: CaseIdentity
    segment: Count = 0  # which segment (start or resume) measured it
    status: Status
    reason: Text = ""
    device_name: Text | None = None
    device_resolved: Text | None = None
    measurement: Measurement | None = None
    facts: Facts | None = None
    timing: Overheads = Overheads()
    collectors: dict[str, SamplerResult] = {}
    energy: Energy | None = None
    flags: list[Flag] = []


class BatchLimit(_Record):
    """The result of a batch_sizes = ["auto"] search."""

    batch_limit: Count
    limited_by: Text
    tries: list[dict[str, Any]] = []


# ---------------------------------------------------------------- machine profile
class DeviceRoofs(_Record):
    """What ``hwbench probe`` measured one device can deliver: the roofs of its roofline.

    GEMM figures are TFLOP/s (TOP/s for int8) from the median time of the best shape of
    the search; bandwidths count bytes read + written, GB/s (1e9 bytes / s)."""

    model_config = ConfigDict(extra="allow")  # a newer probe may measure more

    device_name: Text | None = None
    # peak key (fp32, tf32, fp16, bf16, fp8, int8) -> compute roof, TFLOP/s, at the probe's
    # full thread count: the measured GEMM figure, except where gemm_notes says otherwise
    gemm_tflops: dict[str, Float] = {}
    gemm_notes: dict[str, Text] = {}  # peak key -> how its roof differs from its own GEMM figure
    # CPU: thread count (as text, JSON keys are strings) -> peak key -> TFLOP/s
    gemm_tflops_by_threads: dict[str, dict[str, Float]] = {}
    memory_bandwidth_gbs: Float | None = None  # device copy, buffers beyond the last-level cache (best size)
    # copy bandwidth by working set (bytes read + written per call): [[bytes, GB/s], ...], ascending
    bandwidth_curve: list[list[Float]] = []
    host_memory_bandwidth_gbs: Float | None = None  # host copy (CPU: the same memory as the device)
    host_device_gbs: dict[str, Float] = {}  # "h2d_pinned", "d2h_pageable", ...: GB/s, bytes transferred


class MachineProfile(_Record):
    """The machine profile a segment used (the summary of one ``hwbench probe`` file)."""

    model_config = ConfigDict(extra="allow")

    profile_id: Annotated[str, Field(max_length=100)]
    created: Text
    path: Text | None = None  # the profile file it was read from
    thorough: bool = False
    devices: dict[str, DeviceRoofs] = {}  # "cpu", "cuda:0", ... as torch names them


# ---------------------------------------------------------------- the run
class Segment(_Record):
    """One start or resume of a run, with the environment that measured its cases."""

    index: Count
    started: Text
    environment: Environment
    filters: list[Text] = []
    env_changes: list[Text] = []  # differences from segment 0 accepted by --allow-env-change
    idle_baseline: IdleBaseline | None = None
    collectors: CollectorsInfo | None = None
    worker_server_start_s: Float | None = None
    machine_profile: MachineProfile | None = None  # hwbench probe's roofs for this machine, if any


class NodeRole(_Record):
    """This file is one node's part of a multi-node run (``hwbench run --nnodes``): every
    node runs the suite's parallel cases in lockstep, each case one torchrun group
    spanning the nodes, and writes its own ranks' results and its own collectors."""

    job_id: Annotated[str, Field(min_length=1, max_length=200)]  # the same on every node of the run
    nnodes: Annotated[int, Field(ge=2, le=100_000)]
    node_rank: Annotated[int, Field(ge=0, le=100_000)]
    rdzv_endpoint: Text  # host:port of the rendezvous (node 0 hosts it)


class NodePart(_Record):
    """One node's part of a merged multi-node record: where it came from, and its
    segments (environment, idle baseline, collectors) as the part had them."""

    node_rank: Count
    nnodes: Count = 0  # nodes of the run (0: not recorded)
    hostname: Text
    run_id: Text
    path: Text | None = None
    status: RunStatus
    created: Text
    updated: Text | None = None
    segments: list[Segment] = []


class ABRepeat(_Record):
    """One repeat of an ``hwbench ab`` side: the case, its pair, its place in the job's
    order (``slot``, 0-based over the whole job) and when it ran (epoch seconds)."""

    case_id: Annotated[str, Field(max_length=1000)]
    pair: Count
    slot: Count
    started: Float
    ended: Float


class ABSide(_Record):
    """This file is one side of an ``hwbench ab`` job: both sides ran in one job, each
    from its own worker server, their repeats interleaved A B B A (A = base)."""

    job_id: Annotated[str, Field(min_length=1, max_length=200)]  # the same in both sides' files
    side: Literal["base", "new"]
    python: Text  # the interpreter of this side's worker server
    env: dict[str, Text] = {}  # environment variables set for this side (beyond the job's own)
    pairs: Count  # repeats per side asked for (= pairs)
    order: Literal["ABBA"] = "ABBA"
    repeats: list[ABRepeat] = []  # in the order they ran


@with_config(ConfigDict(extra="allow"))
class ResolvedSettings(TypedDict, total=False):
    """The settings of ``suite.resolved`` that readers use, checked on load (a
    hand-edited file would otherwise fail deep in a report); the others pass as they
    are. Stays a plain dict."""

    noise_threshold: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]
    scaling: Literal["weak", "strong"]


@with_config(ConfigDict(extra="allow"))
class ResolvedSuite(TypedDict, total=False):
    """``suite.resolved``: the suite with every default filled in (a plain dict)."""

    settings: ResolvedSettings


class SuiteRef(_Record):
    name: Text
    path: Text
    hash: Text  # sha256 of what the user wrote (not of the defaults)
    resolved: ResolvedSuite  # the suite with every default filled in


class RunRecord(_Record):
    """One run of a suite on one machine: one results file."""

    format: Literal["hwbench-results"] = FORMAT
    schema_version: Literal[4] = SCHEMA_VERSION
    run_id: Annotated[str, Field(min_length=1, max_length=100)]
    created: Text
    updated: Text | None = None
    status: RunStatus
    suite: SuiteRef
    segments: list[Segment] = Field(min_length=1)
    cases: list[CaseResult] = []
    batch_limits: dict[str, BatchLimit] = {}
    node: NodeRole | None = None  # one node's part of a multi-node run
    nodes: list[NodePart] = []  # a merged multi-node run: the parts it was made from
    ab: ABSide | None = None  # one side of an hwbench ab job

    @property
    def nnodes(self) -> int:
        """Machines the run's parallel cases spanned: 1, or a multi-node run's node count
        (a part's, or a joined record's)."""
        if self.node is not None:
            return self.node.nnodes
        return max([n.nnodes for n in self.nodes] or [1])

    @property
    def environment(self) -> Environment:
        """The environment of the first segment (where the run started)."""
        return self.segments[0].environment

    def environment_of(self, case: CaseResult) -> Environment:
        """The environment that measured ``case``."""
        i = case.segment if case.segment < len(self.segments) else 0
        return self.segments[i].environment

    def settings(self) -> dict[str, Any]:
        return self.suite.resolved.get("settings", {})


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a results file (``hwbench schema``)."""
    schema = RunRecord.model_json_schema()
    schema["$id"] = f"https://hwbench/results/v{SCHEMA_VERSION}"
    schema["title"] = f"hwbench results file, schema version {SCHEMA_VERSION}"
    return schema
