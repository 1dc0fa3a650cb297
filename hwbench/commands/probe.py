"""``hwbench probe``: this machine's achievable peaks (GEMM per dtype, memory bandwidth,
host<->device copies), written as a machine profile that later runs pick up.

The measuring lives in :mod:`hwbench.probe`; this module parses, shows progress on
stderr, writes the profile and renders it (table, markdown or JSON on stdout).
"""

from __future__ import annotations

import json
import time

import click

MAX_MESSAGE_BYTES = 2**34  # 16 GiB: each rank holds two buffers of the largest message

PROBE_EPILOG = """\b
The profile is written to DIR/<host>-<date>-<time>-<id>.json (default DIR:
results/profiles). A later `hwbench run` whose results file goes to results/
(or wherever --out puts it) uses the newest profile in the profiles/ folder
beside it that was measured on this machine (same host, CPU model and GPUs);
$HWBENCH_PROFILE_DIR is searched first when set.
"""


@click.command(epilog=PROBE_EPILOG)
@click.option("--device", "devices", multiple=True, metavar="DEV",
              help="cpu, cuda or cuda:N; repeatable.  [default: the CPU and every CUDA GPU]")
@click.option("--thorough", is_flag=True, help="The full shape search, every dtype, more sizes, a longer warmup "
                                               "(minutes on a CPU; tens of minutes on a GPU).")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json"]), default="table", show_default=True)
@click.option("--out", "out_dir", default="results/profiles", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the profile file.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("--collectives", is_flag=True,
              help="Instead: collective microbenchmarks (allreduce, allgather, reduce-scatter, broadcast, "
                   "all-to-all) over a torchrun group of --world-size ranks: latency, algbw and busbw "
                   "(nccl-tests formulas) per message size, results checked.")
@click.option("--world-size", type=click.IntRange(1, 1024), default=2, show_default=True,
              help="--collectives: ranks (one per GPU on CUDA; sharing the cores on CPU).")
@click.option("--max-bytes", type=click.IntRange(1024, MAX_MESSAGE_BYTES), default=16 * 2**20, show_default=True,
              help="--collectives: the largest message, bytes, at most 16 GiB (sizes go up by 4x from 1 KiB).")
def probe(devices: tuple[str, ...], thorough: bool, fmt: str, out_dir: str, quiet: bool, collectives: bool,
          world_size: int, max_bytes: int) -> None:
    """Measure what this machine can deliver: GEMM TFLOP/s per dtype (shape search,
    steady clocks, caches flushed), memory bandwidth (copy, read, write, triad) and
    host<->device copies, with the fraction of the datasheet peak."""
    from ..probe import ProbeSettings, run_probe
    from ..report.text import clean

    _check_devices(devices, collectives, world_size)
    if not collectives:
        from ..writable import output_folder

        output_folder(out_dir, "--out")  # before minutes of measuring
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        if not quiet:
            click.echo(f"[{time.perf_counter() - t0:5.1f} s] {clean(msg)}", err=True)

    if collectives:
        from ..errors import UserError
        from . import collectives as coll

        device = (devices or ("cpu",))[0]
        if len(devices) > 1:
            raise UserError(f"--collectives: one --device, cpu (gloo) or cuda (nccl); got {', '.join(devices)}")
        sizes = [s for s in coll.DEFAULT_SIZES if s <= max_bytes] if max_bytes <= coll.DEFAULT_SIZES[-1] else \
            [4 ** k * 1024 for k in range(0, 16) if 4 ** k * 1024 <= max_bytes]
        progress(f"collectives: {world_size} ranks on {device}, {len(sizes)} sizes up to {max_bytes} bytes")
        try:
            doc = coll.run(world_size, device, sizes)
        except RuntimeError as e:
            raise click.ClickException(str(e)) from None
        click.echo(json.dumps(doc, indent=1) if fmt == "json" else coll.to_table(doc))
        return

    settings = ProbeSettings.full() if thorough else ProbeSettings.quick()
    prof, path = run_probe(list(devices) or None, settings, out_dir, progress)
    progress(f"profile written to {path}")
    render = {"json": to_json, "markdown": to_markdown, "table": to_table}[fmt]
    click.echo(render(prof, path))


def _check_devices(devices: tuple[str, ...], collectives: bool, world_size: int) -> None:
    """--device names (cpu, cuda, cuda:N; N in ASCII digits) and, for --collectives, a
    group this machine can hold, checked before anything starts (no torchrun group is
    launched to find out). UserError otherwise."""
    from .. import devices as kinds
    from ..errors import UserError
    from ..spec import parse_device, shorten

    probed = [k for k, a in kinds.KINDS.items() if a.probe]
    allowed = ", ".join(["cpu"] + [f"{k}, {k}:N" for k in probed])
    for d in devices:
        parsed = parse_device(d)
        if parsed is None or parsed[0] not in ["cpu", *probed]:
            why = "; --collectives runs on cpu (gloo) or cuda / rocm (nccl)" if collectives else ""
            raise UserError(f"--device {shorten(d)}: not one of {allowed} (N in digits 0-9){why}")
    if not collectives:
        return  # run_probe checks that the devices are present
    kind, index = parse_device((devices or ("cpu",))[0])
    acc = kinds.KINDS.get(kind)
    if acc.host_threads():
        from ..planning import usable_cores

        cores = usable_cores()
        if world_size > cores:
            raise UserError(f"--world-size {world_size}: --collectives on cpu runs one rank per core; "
                            f"this machine has {cores} usable")
        return
    n = len(kinds.discover_all(kinds=(kind,))[kind].devices)
    if index is not None and index >= n:
        raise UserError(f"--device {devices[0]}: no such {acc.label} device here ({n} visible)")
    if index not in (None, 0):
        raise UserError(f"--device {devices[0]}: --collectives puts rank i on {kind}:i; give --device {kind} "
                        "(CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES chooses the GPUs)")
    if world_size > n:
        raise UserError(f"--world-size {world_size}: --collectives on {kind} runs one rank per GPU; "
                        f"{n} {acc.label} GPU{'s' * (n != 1)} visible here")


# ------------------------------------------------------------------ rendering
def primary(prof) -> str:
    """The device the top-level JSON keys describe: the first accelerator, else the CPU."""
    names = list(prof.devices)
    return next((n for n in names if n != "cpu"), names[0])


def summary(prof, path) -> dict:
    """The JSON document: the primary device's figures at the top level (``gemm_tflops``:
    dtype -> TFLOP/s; ``memory_bandwidth_gbs``), every device in ``devices``."""
    main = primary(prof)
    roofs = prof.roofs.devices
    out = {
        "format": "hwbench-probe",
        "profile": str(path) if path else None,
        "profile_id": prof.profile_id,
        "created": prof.created,
        "thorough": prof.roofs.thorough,
        "device": main,
        "device_name": roofs[main].device_name,
        "gemm_tflops": measured(prof.devices[main]),
        "memory_bandwidth_gbs": roofs[main].memory_bandwidth_gbs,
        "host_memory_bandwidth_gbs": roofs[main].host_memory_bandwidth_gbs,
        "host_device_gbs": roofs[main].host_device_gbs,
        "host_device_note": prof.devices[main].host_device_note,
        "devices": {},
    }
    for name, d in prof.devices.items():
        out["devices"][name] = {
            "gemm_tflops": measured(d),
            "roofs": roofs[name].model_dump(),
            "gemm": [r.model_dump(exclude={"trials"}) for r in d.gemm],
            "memory": [r.model_dump() for r in d.memory],
            "host_device": [r.model_dump() for r in d.host_device],
            "host_device_note": d.host_device_note,
            "warmup": d.warmup.model_dump() if d.warmup else None,
            "telemetry": [t.model_dump() for t in d.telemetry],
            "duration_s": d.duration_s,
        }
    return out


def measured(d) -> dict:
    """dtype -> the measured GEMM TFLOP/s (median of the best shape) at the largest thread count."""
    ok = [r for r in d.gemm if r.ok and r.tflops_median is not None]
    top = max((r.threads for r in ok if r.threads is not None), default=None)
    return {r.dtype: r.tflops_median for r in ok if r.threads == top}


def to_json(prof, path) -> str:
    return json.dumps(summary(prof, path), indent=1)


def _f(v, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}g}"


def _size(b) -> str:
    for u, s in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= s:
            return f"{b / s:g} {u}"
    return f"{b} B"


def peak_rows(prof) -> list[list[str]]:
    """device, dtype, threads, achievable (median), best call, shape, datasheet, fraction, note."""
    rows = []
    for name, d in prof.devices.items():
        for r in d.gemm:
            shape = "x".join(map(str, r.shape)) if r.shape else "-"
            frac = "-" if r.datasheet_fraction is None else f"{r.datasheet_fraction * 100:.1f} %"
            note = r.reason if r.ok else f"not measured: {r.reason}"
            if r.ok and r.datasheet_tflops is None and r.datasheet_source:
                note = (note + "; " if note else "") + r.datasheet_source
            rows.append([name, r.dtype, "-" if r.threads is None else str(r.threads), _f(r.tflops_median),
                         _f(r.tflops_best), shape, _f(r.datasheet_tflops), frac, note])
    return rows


def memory_rows(prof) -> list[list[str]]:
    rows = []
    for name, d in prof.devices.items():
        for r in d.memory:
            rows.append([name, r.kernel, _size(r.buffer_bytes), _size(r.bytes_per_call), _f(r.gbs_median),
                         _f(r.gbs_best), "yes" if r.beyond_cache else "no"])
        for r in d.host_memory:
            rows.append([f"{name} host", r.kernel, _size(r.buffer_bytes), _size(r.bytes_per_call), _f(r.gbs_median),
                         _f(r.gbs_best), "yes" if r.beyond_cache else "no"])
    return rows


PEAK_HEAD = ["device", "dtype", "threads", "TFLOP/s (median)", "TFLOP/s (best call)", "shape M x N x K",
             "datasheet TFLOP/s", "of datasheet", "note"]
MEM_HEAD = ["device", "kernel", "buffer", "bytes / call (read + written)", "GB/s (median)", "GB/s (best)",
            "beyond cache"]


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _transfer_lines(prof) -> list[str]:
    out = []
    for name, d in prof.devices.items():
        if d.host_device:
            for r in d.host_device:
                out.append(f"{name}: {r.direction} {r.memory} {_size(r.size_bytes)}: {_f(r.gbs_median)} GB/s")
        else:
            out.append(f"{name}: host<->device copies {d.host_device_note or 'not measured'}")
    return out


def _telemetry_lines(prof) -> list[str]:
    out = [f"{name}: {k} roof: {note}" for name, r in prof.roofs.devices.items() for k, note in r.gemm_notes.items()]
    for name, d in prof.devices.items():
        if d.warmup:
            out.append(f"{name}: warmed up {d.warmup.duration_s:.1f} s, "
                       f"{'steady' if d.warmup.steady else 'NOT steady (figures may vary)'}")
        for t in d.telemetry:
            s = t.summary
            bits = [f"{k[:-5]} {s[k]:.4g}" for k in s if k.endswith("_mean")]
            if t.throttle:
                bits.append("throttled: " + ", ".join(t.throttle))
            if bits:
                out.append(f"{name} {t.phase}: " + "; ".join(bits))
        if d.telemetry_note:
            out.append(f"{name}: {d.telemetry_note}")
    return out


def to_markdown(prof, path) -> str:
    parts = [f"## Machine profile {prof.profile_id} ({prof.created}{', thorough' if prof.roofs.thorough else ''})",
             "", f"Profile file: `{path}`" if path else "", "", "### Achievable GEMM peaks", "",
             _md_table(PEAK_HEAD, peak_rows(prof)), "", "### Memory bandwidth (bytes read + written)", "",
             _md_table(MEM_HEAD, memory_rows(prof)), "", "### Host <-> device copies", ""]
    parts += [f"* {x}" for x in _transfer_lines(prof)]
    tel = _telemetry_lines(prof)
    if tel:
        parts += ["", "### Clocks and throttling during the probe", ""] + [f"* {x}" for x in tel]
    return "\n".join(parts)


def to_table(prof, path) -> str:
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    from ..report.text import literal

    buf = StringIO()
    con = Console(file=buf, width=160, highlight=False)
    for title, head, rows in (("Achievable GEMM peaks", PEAK_HEAD, peak_rows(prof)),
                              ("Memory bandwidth (bytes read + written)", MEM_HEAD, memory_rows(prof))):
        t = Table(title=title, title_justify="left")
        for h in head:
            t.add_column(h, overflow="fold")
        for r in rows:
            t.add_row(*(literal(c) for c in r))
        con.print(t)
    for line in _transfer_lines(prof) + _telemetry_lines(prof):
        con.print(literal(line))
    if path:
        con.print(literal(f"profile: {path}"))
    return buf.getvalue().rstrip("\n")


COMMANDS = [probe]
