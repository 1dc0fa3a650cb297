"""``hwbench env``: this machine's environment fingerprint."""

from __future__ import annotations

import json

import click

from ..report.text import clean
from .output import console, print_lines, width


# CPU flags that decide the CPU peak (SIMD width, FMA) or matmul speed of a dtype.
_CPU_FLAGS_SHOWN = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16",
                    "amx_int8", "amx_tile", "asimd", "sve", "sve2", "bf16", "i8mm")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def env(as_json: bool) -> None:
    """Show this machine's environment fingerprint."""
    from .. import env as envmod
    from ..devices import present
    from ..report import format as fm
    from ..report.fit import cut

    fp = envmod.fingerprint()
    if as_json:
        click.echo(json.dumps(fp, indent=1))
        return
    rows: list[tuple[str, str]] = []
    for k, v in fp.items():
        if k in ("accelerators", "cpu_freq_max_source"):
            continue
        if k == "memory_total_bytes":
            v = fm.nbytes(v)
        elif k == "cpu_freq_max_mhz":
            # the clock the CPU peak (and so MFU) is computed from
            src = fp.get("cpu_freq_max_source")
            all_core = not fm.missing(fp.get("cpu_freq_all_core_mhz"))
            if not fm.missing(v):
                v = f"{fm.mhz(v)} from {src}" + (" (the CPU peak uses the all-core clock)" if all_core else
                                                  " (the CPU peak for MFU uses it)")
            else:
                v = "unknown here (e.g. a VM)" + ("" if all_core else ": CPU MFU stays empty")
        elif k == "cpu_flags":
            v = list(v or [])
            shown = [f for f in _CPU_FLAGS_SHOWN if f in v]
            v = ", ".join(v) if len(v) <= 8 else f"{len(v)} flags, among them {', '.join(shown) or 'no SIMD extension'}"
        else:
            v = fm.plain(v) if not fm.missing(v) else "-"
        rows.append((k, str(v)))
    for g in fp["accelerators"]:
        mem = f", {fm.nbytes(g['memory_total_bytes'])}" if g.get("memory_total_bytes") else ""
        arch = f", {g['arch']}" if g.get("arch") else ""
        rows.append((f"{g.get('kind', 'gpu')} {g['index']}", f"{g['name']}{mem}{arch}"))
    rows.append(("devices", ", ".join(d.name for d in present())))
    w = width()
    kw = max(len(k) for k, _ in rows)
    con = console()
    print_lines(con, ["environment"], style="bold")
    print_lines(con, [cut(clean(f"{k:<{kw}}  {v}"), w) for k, v in rows])



COMMANDS = (env,)
