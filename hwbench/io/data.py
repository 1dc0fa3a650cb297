"""Data cases: a model family's input pipeline, timed per batch delivered to the device.

Files are written once per case into its scratch folder (untimed): JPEG images
(Pillow, quality 90) for image families, slightly larger than the case's image size
as stored datasets are; int32 token shards for sequence families. A
``torch.utils.data.DataLoader`` with the case's ``num_workers``, ``pin_memory``,
``prefetch_factor`` and ``persistent_workers`` reads them back:

* images: read the file, decode (Pillow), then augment with torch ops -- a random
  resized crop (scale 0.35-1, bilinear), a random horizontal flip, scaling to 0-1 and
  per-channel normalisation -- into a (3, size, size) float tensor and a class label;
* tokens: ``seq_len + 1`` int32 tokens read at the sample's offset (``os.pread``),
  returned as int64 ids and the next-token ids.

One timed iteration is one batch: wait for the loader, copy the batch to the device
and convert floating inputs to the case's precision. On an accelerator with streams
the copy of the next batch is issued on a side stream (``non_blocking=True``) while
the current one is handed over, so the copy overlaps the consumer's work. What the
step cannot consume faster than this is the pipeline's ceiling.
"""

from __future__ import annotations

import io as _io
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .. import devices
from ..case import Case

JPEG_QUALITY = 90
STORED_SCALE = 1.15  # stored images are this much larger than the crop (256 for 224, as ImageNet's resize)
SHARD_SAMPLES = 64  # sequences per token shard
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# ------------------------------------------------------------------------------ files
def write_images(folder: Path, n: int, image_size: int, classes: int, seed: int) -> list[tuple[str, int]]:
    """``n`` JPEG files of smooth random content (upsampled noise plus grain, so they
    compress as photographs do, not as noise) -> [(path, label)]."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    side = max(image_size, round(image_size * STORED_SCALE))
    out = []
    for i in range(n):
        coarse = torch.rand(1, 3, 8, 8, generator=g)
        img = torch.nn.functional.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False)[0]
        img = (img + 0.08 * torch.randn(img.shape, generator=g)).clamp(0, 1)
        arr = (img.permute(1, 2, 0) * 255).to(torch.uint8).contiguous().numpy()
        path = folder / f"{i:07d}.jpg"
        Image.fromarray(arr, "RGB").save(path, format="JPEG", quality=JPEG_QUALITY)
        out.append((str(path), int(torch.randint(0, classes, (1,), generator=g))))
    return out


def write_shards(folder: Path, n: int, seq_len: int, vocab: int, seed: int) -> list[str]:
    """``n`` samples of ``seq_len + 1`` int32 tokens in shards of :data:`SHARD_SAMPLES`
    -> the shard paths (sample i: shard i // SHARD_SAMPLES)."""
    g = torch.Generator().manual_seed(seed)
    paths = []
    for s in range(0, n, SHARD_SAMPLES):
        k = min(SHARD_SAMPLES, n - s)
        tokens = torch.randint(0, vocab, (k, seq_len + 1), generator=g, dtype=torch.int32)
        path = folder / f"shard-{s // SHARD_SAMPLES:05d}.bin"
        path.write_bytes(tokens.numpy().tobytes())
        paths.append(str(path))
    return paths


# --------------------------------------------------------------------------- datasets
class JpegImages(torch.utils.data.Dataset):
    """Read, decode and augment one JPEG per sample (module docstring)."""

    def __init__(self, files: list[tuple[str, int]], image_size: int, seed: int):
        self.files, self.size, self.seed = files, image_size, seed
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.files[i]
        with open(path, "rb") as f:
            data = f.read()
        img = Image.open(_io.BytesIO(data)).convert("RGB")
        w, h = img.size
        x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(h, w, 3).permute(2, 0, 1)
        return augment(x, self.size, self.mean, self.std), label


def augment(x: torch.Tensor, size: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """A (3, H, W) uint8 image -> (3, size, size) float32: random resized crop (area
    scale 0.35-1, aspect 3/4-4/3, bilinear), random horizontal flip, 0-1, normalised."""
    _, h, w = x.shape
    area = h * w * float(torch.empty(1).uniform_(0.35, 1.0))
    aspect = float(torch.empty(1).uniform_(3 / 4, 4 / 3))
    ch = max(1, min(h, round((area / aspect) ** 0.5)))
    cw = max(1, min(w, round((area * aspect) ** 0.5)))
    top = int(torch.randint(0, h - ch + 1, (1,)))
    left = int(torch.randint(0, w - cw + 1, (1,)))
    crop = x[:, top:top + ch, left:left + cw].unsqueeze(0).float()
    out = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0]
    if float(torch.rand(1)) < 0.5:
        out = out.flip(-1)
    return (out / 255.0 - mean) / std


class TokenShards(torch.utils.data.Dataset):
    """One sequence per sample, read from its shard at its offset (module docstring).
    File descriptors are opened per process, on first use (loader workers are forked)."""

    def __init__(self, shards: list[str], n: int, seq_len: int):
        self.shards, self.n, self.seq_len = shards, n, seq_len
        self._fds: dict[tuple[int, int], int] = {}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        shard, row = divmod(i, SHARD_SAMPLES)
        key = (os.getpid(), shard)
        fd = self._fds.get(key)
        if fd is None:
            fd = self._fds[key] = os.open(self.shards[shard], os.O_RDONLY)
        width = (self.seq_len + 1) * 4
        buf = os.pread(fd, width, row * width)
        t = torch.frombuffer(bytearray(buf), dtype=torch.int32).long()
        return t[:-1], t[1:]

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()


# ------------------------------------------------------------------------ the consumer
class DeviceFeed:
    """Batches from ``loader`` moved to ``device``, with the time spent waiting on the
    loader. On a device with streams the next batch's copy is issued on a side stream
    (non-blocking) before the current batch is handed over; the consumer's stream waits
    on it. An epoch's end starts the next epoch."""

    def __init__(self, loader, device: torch.device, dtype: torch.dtype | None, mod: Any = None):
        self.loader, self.device, self.dtype = loader, device, dtype
        self.wait_s = 0.0
        self.batches = 0
        # the device's torch module (torch.cuda, torch.xpu): streams where it has them.
        # ``mod`` replaces it in tests (a fake that records the stream calls)
        acc = devices.of_torch(device)
        self.mod = mod if mod is not None else (None if acc.host_threads() else acc.module())
        self.stream = self.mod.Stream(device) if self.mod is not None and hasattr(self.mod, "Stream") else None
        self._it = None
        self._next = None

    def _fetch(self):
        t0 = time.perf_counter()
        if self._it is None:
            self._it = iter(self.loader)
        try:
            batch = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)  # the next epoch (new loader workers unless persistent)
            batch = next(self._it)
        self.wait_s += time.perf_counter() - t0
        return batch

    def _to_device(self, batch):
        x, y = batch
        if self.stream is None:
            x, y = x.to(self.device), y.to(self.device)
            return (x.to(self.dtype) if self.dtype is not None else x), y, None
        with self.mod.stream(self.stream):
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if self.dtype is not None:
                x = x.to(self.dtype)
        return x, y, self.stream

    def __call__(self):
        """One batch on the device (the timed step)."""
        if self._next is None:
            self._next = self._to_device(self._fetch())
        x, y, stream = self._next
        if stream is not None:
            main = self.mod.current_stream(self.device)
            main.wait_stream(stream)  # the consumer's work on x, y starts after their copy
            self.record(x, main)  # the allocator must not reuse their memory before main is done
            self.record(y, main)
        self._next = self._to_device(self._fetch()) if stream is not None else None
        self.batches += 1
        return x, y

    @staticmethod
    def record(t: torch.Tensor, stream: Any) -> None:
        t.record_stream(stream)

    def close(self) -> None:
        self._it = None  # ends the loader's workers (unless persistent: the loader's own end)
        self._next = None


# ------------------------------------------------------------------------- CPU time
def loader_cpu_s(num_workers: int) -> float:
    """CPU seconds (user + system) the loading has used so far: this process's where it
    loads itself (num_workers = 0); else its loader processes', live ones (psutil) plus
    those already ended and reaped (RUSAGE_CHILDREN). A difference of two readings is
    the loading's CPU time over that window."""
    if num_workers == 0:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    import psutil

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = r.ru_utime + r.ru_stime
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def _loader_init(worker_id: int) -> None:
    """In each loader process: SIGTERM ends it at once (the worker's scratch handler,
    inherited through fork, is for the worker itself; the DataLoader terminates its
    processes with SIGTERM when they do not stop in time)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)


# ----------------------------------------------------------------------------- the case
@dataclass
class DataPipeline:
    """What a data case built: its dataset, the loader, the feed, and the file facts."""

    loader: Any
    feed: DeviceFeed
    files: int
    bytes_on_disk: int
    bytes_per_sample: float
    samples: int
    what: str


def build(case: Case, fam: Any, cfg: Any, settings: Any, device: torch.device, dtype: torch.dtype | None,
          folder: Path) -> DataPipeline:
    """Write the case's files into ``folder`` and build its loader and feed."""
    n = max(settings.data_samples, 4 * case.batch_size)
    if fam.shape_kind == "image_size":
        files = write_images(folder, n, case.image_size, int(cfg.get("classes", 1000)), settings.seed)
        dataset = JpegImages(files, case.image_size, settings.seed)
        paths = [p for p, _ in files]
        what = f"{n} JPEG images, {round(case.image_size * STORED_SCALE)} px stored, cropped to {case.image_size}"
    else:
        seq = case.seq_len or cfg["seq_len"]
        paths = write_shards(folder, n, seq, int(cfg.get("vocab", 32000)), settings.seed)
        dataset = TokenShards(paths, n, seq)
        what = f"{n} sequences of {seq} + 1 int32 tokens in {len(paths)} shards"
        dtype = None  # token ids stay integer
    size = sum(os.path.getsize(p) for p in paths)
    w = case.num_workers or 0
    g = torch.Generator().manual_seed(settings.seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=case.batch_size, shuffle=True, drop_last=True, num_workers=w,
        pin_memory=bool(case.pin_memory), prefetch_factor=case.prefetch_factor if w else None,
        persistent_workers=bool(case.persistent_workers) if w else False, generator=g,
        multiprocessing_context="fork" if w and hasattr(os, "fork") else None,
        worker_init_fn=_loader_init if w else None,
    )
    return DataPipeline(loader, DeviceFeed(loader, device, dtype), len(paths), size, size / n, n, what)


def run(case: Case, fam: Any, cfg: Any, settings: Any, device: torch.device, dtype: torch.dtype | None,
        folder: Path, measure: Callable) -> tuple[Any, dict[str, Any], list[tuple[str, str]]]:
    """Build the pipeline and time it. ``measure(step, on_first_timed)`` is the worker's
    timed loop. Returns (timing.Measurement, facts, flags as (name, detail))."""
    pipe = build(case, fam, cfg, settings, device, dtype, folder)
    w = case.num_workers or 0
    marks: dict[str, float] = {}

    def first_timed():
        marks["cpu0"], marks["wait0"] = loader_cpu_s(w), pipe.feed.wait_s

    try:
        m = measure(pipe.feed, first_timed)
        cpu_s = loader_cpu_s(w) - marks.get("cpu0", 0.0)
        wait_s = pipe.feed.wait_s - marks.get("wait0", 0.0)
    finally:
        pipe.feed.close()
        if isinstance(pipe.loader.dataset, TokenShards):
            pipe.loader.dataset.close()
        del pipe.loader
    facts = {
        "data_files": pipe.files,
        "data_bytes_on_disk": pipe.bytes_on_disk,
        "data_bytes_per_sample": pipe.bytes_per_sample,
        "data_loader_wait_s": max(0.0, wait_s),
        "data_loader_cpu_s": max(0.0, cpu_s),
        "data_pipeline": pipe.what,
    }
    return m, facts, _flags(case, device)


def _flags(case: Case, device: torch.device) -> list[tuple[str, str]]:
    out = []
    cpus = os.cpu_count() or 1
    if (case.num_workers or 0) > cpus:
        out.append(("loader_oversubscribed", f"num_workers = {case.num_workers} loader processes on {cpus} logical "
                    "CPUs: they share cores, so this measures contention as much as the pipeline"))
    if case.pin_memory and devices.of_torch(device).host_threads():
        out.append(("pin_memory_unused", "pin_memory = true on the CPU device: pinned memory speeds copies to an "
                    "accelerator; here nothing is copied, so the case measures pinning's cost only"))
    return out
