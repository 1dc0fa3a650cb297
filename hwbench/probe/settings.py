"""How much a probe measures: the quick default, ``--thorough``, and tiny settings for tests.

A frozen value, passed in (never module state). Durations are seconds, sizes bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

KiB, MiB, GiB = 2**10, 2**20, 2**30


@dataclass(frozen=True)
class ProbeSettings:
    """Knobs of one probe. Shapes are (M, N, K) of ``A[M,K] @ B[K,N]``."""

    thorough: bool = False
    # --- GEMM
    cpu_shapes: tuple[tuple[int, int, int], ...] = ((512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048))
    # where a CPU has no native bf16 / int8 matmul, torch falls back to slow kernels that
    # peak at small shapes: search these instead, ascending
    cpu_slow_shapes: tuple[tuple[int, int, int], ...] = ((64, 64, 64), (128, 128, 128), (256, 256, 256))
    gpu_shapes: tuple[tuple[int, int, int], ...] = ((4096, 4096, 4096), (6144, 6144, 6144), (8192, 8192, 8192))
    cpu_dtypes: tuple[str, ...] = ("fp32", "bf16")
    gpu_dtypes: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")
    cpu_threads: tuple[int, ...] | None = None  # None: 1 and every physical core (thorough: powers of 2 too)
    shape_time_s: float = 0.4  # measuring time per shape (after one untimed call)
    min_reps: int = 3  # timed calls per shape, at least ...
    max_reps: int = 50  # ... and at most
    max_call_s: float = 1.0  # skip a shape predicted to take longer than this per call
    warmup_min_s: float = 1.0  # warm up at least this long, then until steady ...
    warmup_max_s: float = 4.0  # ... but no longer than this
    warmup_window_s: float = 0.25  # throughput windows compared for "steady"
    warmup_tolerance: float = 0.03  # last three windows within this relative spread: steady
    # --- memory
    cpu_mem_sizes: tuple[int, ...] = (256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB)
    gpu_mem_sizes: tuple[int, ...] = (4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB, 1 * GiB)
    mem_time_s: float = 0.2  # measuring time per kernel and size
    copy_sizes: tuple[int, ...] = (256 * MiB,)  # host<->device transfer sizes
    flush_bytes: int | None = None  # cache flush buffer; None: 2x the last-level cache (CPU) or L2 (GPU)

    @classmethod
    def quick(cls) -> ProbeSettings:
        """The default: under a minute on a CPU machine, a few minutes on a GPU."""
        return cls()

    @classmethod
    def full(cls) -> ProbeSettings:
        """``--thorough``: a wider shape search, every dtype, more sizes, longer warmup."""
        cpu = tuple((m, n, k) for m in (1024, 2048, 3072) for n in (1024, 2048, 3072) for k in (1024, 2048, 4096))
        gpu = tuple((m, n, k) for m in (2048, 4096, 8192, 12288, 16384) for n in (2048, 4096, 8192, 12288, 16384)
                    for k in (2048, 4096, 8192, 12288, 16384))
        return cls(thorough=True, cpu_shapes=cpu,
                   cpu_slow_shapes=((64, 64, 64), (128, 128, 128), (256, 256, 256), (512, 512, 512)),
                   gpu_shapes=gpu, cpu_dtypes=("fp32", "bf16", "int8"), shape_time_s=1.0, min_reps=5,
                   max_reps=200, max_call_s=3.0, warmup_min_s=10.0, warmup_max_s=60.0,
                   cpu_mem_sizes=(64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB, 1 * GiB),
                   gpu_mem_sizes=(1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB, 1 * GiB, 4 * GiB),
                   mem_time_s=0.5, copy_sizes=(16 * MiB, 256 * MiB, 1 * GiB))

    @classmethod
    def tiny(cls) -> ProbeSettings:
        """Seconds, for tests: the code paths, not trustworthy figures."""
        return cls(cpu_shapes=((128, 128, 128), (256, 256, 256)), cpu_slow_shapes=((32, 32, 32), (64, 64, 64)),
                   cpu_threads=(1,), shape_time_s=0.02, min_reps=2, max_reps=5, warmup_min_s=0.05,
                   warmup_max_s=0.2, warmup_window_s=0.02, cpu_mem_sizes=(256 * KiB, 4 * MiB), mem_time_s=0.02,
                   flush_bytes=4 * MiB)

    def with_(self, **kw) -> ProbeSettings:
        return replace(self, **kw)
