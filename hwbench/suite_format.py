"""The suite file's format: the pydantic models of a suite (``[suite]``, ``[settings]``,
``[[matrix]]`` blocks) with their fields, bounds and validators, and the device names a
suite may write. :mod:`hwbench.spec` reads suite files with them and expands blocks
into cases (it re-exports every name here); docs/reference/suite.md is generated from
these models."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import backends, models, parallel, precisions, variants
from . import io as iomod
from .options import MAX_DURATION_S
from .records import CaseIdentity, Count, SuiteRef
from .devices import KINDS
from .registry import closest

# the device kinds a suite may name: "auto" and every kind of the accelerator layer
DEVICE_KINDS = ("auto", *KINDS.names())
# Names people write for a device kind; spelling similarity would suggest the wrong one
# ('gpu' is closer to 'xpu' than to 'cuda').
DEVICE_ALIASES = {"gpu": "cuda", "nvidia": "cuda", "hip": "rocm", "amd": "rocm", "metal": "mps", "apple": "mps",
                  "intel": "xpu", "tpu": "xla", "gaudi": "hpu", "habana": "hpu", "host": "cpu"}


MAX_CASES = 100_000

# The bounds a results record imposes (hwbench.records, one source): a suite value
# beyond them would run its worker and then fail to be recorded.
COUNT_MAX: int = next(m.le for m in Count.__metadata__[0].metadata if hasattr(m, "le"))


def _max_length(record: type[BaseModel], name: str) -> int:
    return next(m.max_length for m in record.model_fields[name].metadata if hasattr(m, "max_length"))


DEVICE_NAME_MAX = _max_length(CaseIdentity, "device")
SUITE_NAME_MAX = _max_length(SuiteRef, "name")
# Ranks of one parallel case: beyond any machine or cluster hwbench launches (torchrun
# numbers ranks in C ints); a world size larger than this machine's devices or cores
# is skipped at planning with the reason.
MAX_WORLD_SIZE = 1_048_576
# A bounded count: what a record holds, from 1 (or ``ge``).
Positive = Annotated[Count, Field(ge=1)]
MAX_CPU_TDP_W = 10_000.0  # beyond any CPU package; keeps estimated joules finite
_DEVICE_RE = re.compile(rf"({'|'.join(DEVICE_KINDS)})(?::([0-9]+))?")


def allowed_devices() -> str:
    """The device names a suite may write, for messages: "auto, cpu, cuda, cuda:N, ..."."""
    return ", ".join(["auto"] + [f"{k}, {k}:N" if KINDS.get(k).indexed else k for k in KINDS.names()])


def parse_device(name: str) -> tuple[str, int | None] | None:
    """A device name (``auto``, a kind of the accelerator layer, ``<kind>:N`` for
    indexed kinds; N in ASCII digits) -> (kind, index or None); None if it is not one."""
    m = _DEVICE_RE.fullmatch(name) if len(name) <= DEVICE_NAME_MAX else None
    if m is None or (m.group(2) is not None and (m.group(1) == "auto" or not KINDS.get(m.group(1)).indexed)):
        return None
    return m.group(1), None if m.group(2) is None else int(m.group(2))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class SuiteInfo(_Strict):
    name: str = Field(min_length=1, max_length=SUITE_NAME_MAX, description="Short name, used in results file names")
    description: str = Field("", description="Free text shown by `hwbench list suites`")


class Settings(_Strict):
    """Measurement settings. Units are in the names."""

    warmup_iters: Count = Field(3, ge=0, description="Untimed iterations before measuring (the first is timed separately)")
    warmup_s: float = Field(0.0, ge=0, le=MAX_DURATION_S, description="Keep warming up until this much time has passed")
    min_time_s: float = Field(1.0, gt=0, le=MAX_DURATION_S, description="Measure at least this long per repeat")
    min_iters: Positive = Field(10, ge=1, description="Measure at least this many iterations per repeat")
    max_iters: Positive = Field(100_000, ge=1, description="Stop a repeat after this many iterations")
    repeats: Positive = Field(1, ge=1, description="Measurement rounds per case; raw times kept per round")
    timeout_s: float = Field(600.0, gt=0, le=MAX_DURATION_S, description="Wall-clock limit per case, worker start to result")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed for weights and inputs")
    collectors: list[str] = Field(
        ["host", "nvidia", "rapl"], description="Samplers to run; those this machine lacks are noted and skipped"
    )
    sample_interval_s: float = Field(0.1, ge=0.01, le=MAX_DURATION_S, description="Collector sampling interval, s")
    per_core: bool = Field(False, description="Also sample each CPU core's utilisation")
    store_samples: bool = Field(True, description="Keep each case's sample time series in the results file")
    idle_baseline_s: float = Field(2.0, ge=0, le=MAX_DURATION_S, description="Measure idle power this long once per run (0: skip)")
    min_energy_window_s: float = Field(
        0.0, ge=0, le=MAX_DURATION_S, description="Measure at least this long (all repeats together) so energy counters resolve it"
    )
    cpu_tdp_w: float | None = Field(None, gt=0, le=MAX_CPU_TDP_W, description="CPU package TDP, W, for estimated energy without RAPL")
    noise_threshold: float = Field(0.1, gt=0, description="IQR/median above which a case is flagged noisy")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = Field(
        "default", description="torch.compile mode for the compile backend"
    )
    max_batch_size: Positive = Field(4096, ge=1, description="Upper bound of the batch_sizes = [\"auto\"] search")
    check_accuracy: bool = Field(True, description="Record output deviation from fp32 eager for every other case")
    count_flops: bool = Field(True, description="Count FLOPs of one step with torch.utils.flop_counter")
    distill_alpha: float = Field(
        0.5, ge=0, le=1,
        description="distill:<size> variants: weight of the distillation loss (KL divergence to the teacher's "
        "softened outputs); the task loss gets 1 - distill_alpha",
    )
    distill_temperature: float = Field(
        2.0, gt=0, description="distill:<size> variants: softmax temperature of teacher and student logits in the "
        "distillation loss (scaled by its square, as Hinton et al.)",
    )
    scaling: Literal["weak", "strong"] = Field(
        "weak", description="Parallel cases: weak = batch_size is per rank (the group processes batch_size x "
        "world_size samples per step); strong = batch_size is the group's global batch (split over the ranks)",
    )
    microbatches: Positive = Field(2, ge=1, description="pp cases: microbatches per step (the batch must divide by it)")
    pp_schedule: Literal["gpipe", "1f1b"] = Field(
        "gpipe", description="pp cases: torch.distributed.pipelining schedule (ScheduleGPipe or Schedule1F1B)")
    comm_profile_steps: int = Field(
        3, ge=0, le=100, description="Parallel cases: steps run under torch.profiler after the timed window to "
        "measure time in collectives (0: skip)",
    )
    bucket_cap_mb: float | None = Field(
        None, gt=0, le=65536, description="ddp cases: DistributedDataParallel's gradient bucket size, MiB "
        "(default: torch's, 25)")
    comm_accuracy_steps: int = Field(
        5, ge=0, le=1000, description="Parallel cases with a comm setting: steps run uncompressed and then "
        "compressed from the same initial state to measure param_rel_l2_vs_none (0: skip)")
    checkpoint_dir: str | None = Field(
        None, min_length=1, max_length=4096,
        description="data and checkpoint cases: the scratch folder their files are written to and removed from "
        "(an existing, writable folder); default: a temporary folder next to the results file")
    data_samples: Positive = Field(
        512, ge=1, description="data cases: samples written to the scratch folder (at least 4 batches are)")
    # serving under load (hwbench.serving, docs/serving.md)
    latency_slo_ms: float | None = Field(
        None, gt=0, le=MAX_DURATION_S * 1e3, description="Serving: per-query latency SLO, ms, at "
        "latency_slo_percentile (a Server case without server_qps needs it for its capacity search)")
    latency_slo_percentile: float = Field(
        99.0, gt=0, le=100, description="Serving: the latency percentile the SLO applies to, in (0, 100]")
    ttft_slo_ms: float | None = Field(
        None, gt=0, le=MAX_DURATION_S * 1e3, description="Generation under load: time-to-first-token SLO, ms")
    tpot_slo_ms: float | None = Field(
        None, gt=0, le=MAX_DURATION_S * 1e3, description="Generation under load: time-per-output-token SLO, ms")
    scenario_duration_s: float = Field(
        5.0, gt=0, le=MAX_DURATION_S, description="Serving: length of each load point (LoadGen's min_duration), s")
    max_batch_wait_ms: float = Field(
        2.0, ge=0, le=MAX_DURATION_S * 1e3, description="Serving, Server scenario: the longest the SUT waits "
        "after the oldest queued query for more to fill a batch (a case's batch size is its max batch), ms")
    min_query_count: Positive = Field(
        100, ge=1, description="Serving: queries each LoadGen test runs at least (LoadGen's min_query_count)")
    length_distribution: Literal["fixed", "uniform"] = Field(
        "uniform", description="Generation under load: prompt and output lengths per request; uniform = "
        "integers uniform in [ceil(L/2), L] for L = the case's seq_len / output_len; fixed = L")
    instances: int = Field(
        1, ge=1, le=64, description="Serving, LoadGen scenarios: model replicas serving the SUT's queue at once, "
        "each with its own thread and dynamic batcher (its own stream on GPUs; on a CPU the case's intra-op "
        "threads are divided between them), 1 to 64")
    capacity_rel_tol: float = Field(
        0.1, gt=0, lt=1, description="Serving: the capacity search stops when its passing and failing rates "
        "are within this fraction of the failing one")
    memory_limit_gb: float | None = Field(
        None, ge=1, le=65536,
        description="Memory cap per worker, GiB (1 to 65536): the address space of CPU workers (RLIMIT_AS), "
        "the CUDA allocator's share of the GPU for CUDA workers; beyond it allocations fail -> oom",
    )

    @field_validator("collectors")
    @classmethod
    def _collectors(cls, v):
        from .collectors.samplers import KINDS  # the sampler registry

        return _registered(v, tuple(KINDS))

    @model_validator(mode="after")
    def _iters_order(self):
        if self.max_iters < self.min_iters:
            raise ValueError(f"max_iters ({self.max_iters}) is smaller than min_iters ({self.min_iters})")
        return self


def _suggest(value: str, allowed) -> str:
    close = closest(value, allowed)
    return f" (did you mean {close!r}?)" if close else ""


def _canonical_each(names: list[str], canonical) -> list[str]:
    """Each name in its canonical spelling (``canonical`` raises ValueError for a bad
    one; the error names the list index)."""
    out = []
    for i, name in enumerate(names):
        try:
            out.append(canonical(name))
        except ValueError as e:
            raise ValueError(f"[{i}] {e}") from None
    return out


class MatrixBlock(_Strict):
    """One cartesian product of case dimensions."""

    models: list[str] = Field(min_length=1, description="family:size names, see `hwbench list models`")
    modes: list[Literal["infer", "train", "generate", "data", "checkpoint"]] = Field(
        ["infer"], min_length=1, description="infer, train, generate (model steps); data (the input pipeline), "
        "checkpoint (save and load of model + optimizer state): see docs/io.md")
    # Any, checked by _batch_sizes: a union type would report one error per member
    batch_sizes: list[Any] = Field(
        [1], min_length=1, description='Batch sizes; "auto" = powers of two up to the largest that fits'
    )
    # names checked against the registries (hwbench.precisions, hwbench.backends) at
    # validation time, so a newly registered precision is valid without editing this file
    precisions: list[str] = Field(["fp32"], min_length=1, description="see `hwbench list precisions`")
    backends: list[str] = Field(["eager"], min_length=1, description="eager, compile, cudagraphs")
    devices: list[str] = Field(["cpu"], min_length=1, description=allowed_devices() + " (hwbench list devices)")
    # integers checked by _positive (1 to COUNT_MAX: what a record holds)
    threads: list[int] | None = Field(None, min_length=1, description="CPU intra-op threads; default torch's")
    seq_lens: list[int] | None = Field(None, min_length=1, description="Tokens per sample (transformers)")
    image_sizes: list[int] | None = Field(None, min_length=1, description="Pixels per side (CNN)")
    output_lens: list[int] | None = Field(None, min_length=1, description="Tokens to generate (generate mode)")
    variants: list[str] = Field(
        ["none"], min_length=1, description="none, prune:<sparsity 0..1>, sparse24, distill:<student size>")
    # names checked against the strategy registry (hwbench.parallel.STRATEGIES)
    parallelism: list[str] = Field(
        ["none"], min_length=1,
        description=f"none (one process), {', '.join(parallel.STRATEGIES.names())}: launched as a torchrun group")
    comm: list[str] = Field(
        ["none"], min_length=1, description="Gradient compression of data-parallel cases: none, fp16, bf16, "
        "powersgd:<rank> (hwbench.parallel.comm)")
    # data cases (hwbench.io.data): the DataLoader's settings, one case per combination
    num_workers: list[int] | None = Field(
        None, min_length=1, description="data cases: DataLoader worker processes, 0 (load in the consumer) to "
        "COUNT_MAX (default [0]); more than the logical CPUs is allowed and flagged")
    pin_memory: list[bool] | None = Field(
        None, min_length=1, description="data cases: DataLoader pin_memory, true / false (default [false])")
    prefetch_factors: list[int] | None = Field(
        None, min_length=1, description="data cases: batches each loader worker keeps ahead, 1 or more "
        "(default [2]; cases with num_workers = 0 have none)")
    persistent_workers: list[bool] | None = Field(
        None, min_length=1, description="data cases: keep loader workers between epochs, true / false (default "
        "[false]; cases with num_workers = 0 have none)")
    checkpointers: list[str] | None = Field(
        None, min_length=1, description=f"checkpoint cases: {', '.join(iomod.CHECKPOINTERS.names())} "
        "(default [\"torch_save\"])")
    world_sizes: list[int] | None = Field(
        None, min_length=1, description="Ranks per parallel case, 1 to MAX_WORLD_SIZE (default [1]); 'none' always "
        "runs one process; more ranks than this machine's GPUs (or, on CPU, cores) are skipped")

    scenarios: list[Literal["single_stream", "multi_stream", "server", "offline"]] | None = Field(
        None, min_length=1, description="Serving: MLPerf LoadGen scenarios of infer cases (docs/serving.md)")
    server_qps: list[float] | None = Field(
        None, min_length=1, description="Server scenario: offered load points, queries/s (left out: the "
        "capacity search alone)")
    request_rates: list[float] | None = Field(
        None, min_length=1, description="Generate mode under load: request rates, requests/s")
    arrival: Literal["poisson", "constant"] | None = Field(
        None, description="Generation under load: the arrival process of request_rates (default poisson)")
    latency_slo_ms: float | None = Field(
        None, gt=0, le=MAX_DURATION_S * 1e3, description="Serving: this block's latency SLO, ms (default: settings')")
    ttft_slo_ms: float | None = Field(
        None, gt=0, le=MAX_DURATION_S * 1e3, description="Generation under load: this block's TTFT SLO, ms")
    instances: int | None = Field(
        None, ge=1, le=64, description="LoadGen scenarios: this block's model instances (default: settings')")
    tpot_slo_ms: float | None = Field(
        None, gt=0, le=MAX_DURATION_S * 1e3, description="Generation under load: this block's TPOT SLO, ms")

    @field_validator("server_qps", "request_rates")
    @classmethod
    def _rates(cls, v):
        for i, x in enumerate(v or ()):
            if type(x) not in (int, float) or not 0 < x <= 1e9:
                raise ValueError(f"[{i}] must be a rate above 0 and at most 1e9 per second, got {shorten(x)}")
        return [float(x) for x in v] if v is not None else v

    @field_validator("models")
    @classmethod
    def _known_models(cls, v):
        known = models.model_names()
        for i, name in enumerate(v):
            if name not in known:
                raise ValueError(f"[{i}] unknown model {shorten(name)}{_suggest(name, known)}; known: {', '.join(known)}")
        return v

    @field_validator("num_workers")
    @classmethod
    def _workers(cls, v):
        for i, n in enumerate(v or ()):
            if not 0 <= n <= COUNT_MAX:
                raise ValueError(f"[{i}] {n} is not allowed; allowed: 0 to {COUNT_MAX} loader processes")
        return v

    @field_validator("checkpointers")
    @classmethod
    def _checkpointers(cls, v):
        return _registered(v, iomod.CHECKPOINTERS.names()) if v is not None else v

    @field_validator("threads", "seq_lens", "image_sizes", "output_lens", "world_sizes", "prefetch_factors")
    @classmethod
    def _positive(cls, v, info):
        top = MAX_WORLD_SIZE if info.field_name == "world_sizes" else COUNT_MAX
        for i, n in enumerate(v or ()):
            if not 1 <= n <= top:
                raise ValueError(f"[{i}] must be an integer from 1 to {top}, got {shorten(n)}")
        return v

    @field_validator("batch_sizes")
    @classmethod
    def _batch_sizes(cls, v):
        for i, n in enumerate(v):
            if n != "auto" and (type(n) is not int or not 1 <= n <= COUNT_MAX):
                raise ValueError(f'[{i}] must be an integer from 1 to {COUNT_MAX} or "auto", got {shorten(n)}')
        return v

    @field_validator("precisions")
    @classmethod
    def _precisions(cls, v):
        return _registered(v, precisions.names())

    @field_validator("backends")
    @classmethod
    def _backends(cls, v):
        return _registered(v, backends.names())

    @field_validator("parallelism")
    @classmethod
    def _parallelism(cls, v):
        return _registered(v, ("none",) + parallel.STRATEGIES.names())

    @field_validator("variants")
    @classmethod
    def _variants(cls, v):
        return _canonical_each(v, variants.canonical)

    @field_validator("comm")
    @classmethod
    def _comm(cls, v):
        from .parallel import comm

        return _canonical_each(v, comm.canonical)

    @field_validator("devices")
    @classmethod
    def _device_names(cls, v):
        for i, d in enumerate(v):
            kind = d.partition(":")[0]
            if parse_device(d) is None:
                hint = f" (did you mean {DEVICE_ALIASES[kind]!r}?)" if kind in DEVICE_ALIASES else _suggest(kind, DEVICE_KINDS)
                raise ValueError(f"[{i}] {shorten(d)} is not a device{hint}; allowed: {allowed_devices()} (N in digits 0-9)")
        return v


def shorten(value: Any) -> str:
    """A value for an error message: repr, at most 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _registered(values: list[str], allowed: tuple[str, ...]) -> list[str]:
    for i, name in enumerate(values):
        if name not in allowed:
            raise ValueError(f"[{i}] {shorten(name)} is not allowed{_suggest(name, allowed)}; allowed: {', '.join(allowed)}")
    return values


class SuiteSpec(_Strict):
    suite: SuiteInfo
    settings: Settings = Settings()
    matrix: list[MatrixBlock] = Field(min_length=1)
