"""Grid carbon intensity by place, from the data codecarbon ships (offline).

codecarbon (https://github.com/mlco2/codecarbon, MIT) keeps per-country and
per-region grid data in its package; hwbench reads two of its files and imports no
codecarbon code (its import starts a tracker's machinery; only the data is wanted):

- ``data/private_infra/global_energy_mix.json``: per country (ISO 3166-1 alpha-3 code,
  e.g. ``FRA``), ``carbon_intensity`` in gCO2e/kWh and the ``year`` it holds;
- ``data/private_infra/<year>/usa_emissions.json``: per US state, the EPA eGRID
  total output emission rate in lbs/MWh (its ``_source`` names the dataset and year);
  region codes ``USA-<state>`` (e.g. ``USA-CA``). 1 lb/MWh = 0.45359237 g/kWh.

codecarbon is an optional extra (``pip install "hwbench[carbon]"``): its
dependencies pull no torch and ask nvidia-ml-py without a version bound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

LB_PER_MWH_IN_G_PER_KWH = 0.45359237  # 1 lb = 453.59237 g; 1 MWh = 1000 kWh
INSTALL = 'pip install "hwbench[carbon]"'


@dataclass(frozen=True)
class Intensity:
    """A grid's carbon intensity (gCO2e/kWh) with where it came from."""

    region: str
    name: str
    g_per_kwh: float
    year: int | None
    source: str

    def describe(self) -> str:
        year = f", {self.year}" if self.year else ""
        return f"{self.g_per_kwh:.0f} gCO2e/kWh for {self.region} ({self.name}{year}; {self.source})"


def data_root() -> tuple[Path, str]:
    """(codecarbon's ``data/private_infra`` folder, codecarbon's version), found
    without importing codecarbon. UserError naming the extra when it is not installed."""
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"--region needs codecarbon's grid data, which is not installed: {INSTALL}")
    root = Path(list(spec.submodule_search_locations)[0]) / "data" / "private_infra"
    try:
        version = importlib.metadata.version("codecarbon")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return root, version


def regions(root: Path) -> dict[str, tuple[str, float, int | None, str]]:
    """Every region code -> (name, gCO2e/kWh, year, source) in the data at ``root``."""
    out: dict[str, tuple[str, float, int | None, str]] = {}
    mix = root / "global_energy_mix.json"
    for code, row in json.loads(mix.read_text(encoding="utf-8")).items():
        ci = row.get("carbon_intensity")
        if isinstance(ci, (int, float)) and ci >= 0:
            out[code.upper()] = (str(row.get("country_name") or code), float(ci), row.get("year"),
                                 "global_energy_mix.json")
    for f in sorted(root.glob("*/usa_emissions.json")):  # the newest year's file wins
        doc = json.loads(f.read_text(encoding="utf-8"))
        src = doc.get("_source", {})
        label = f"{f.parent.name}/usa_emissions.json: {src.get('name', 'EPA eGRID')}"
        for state, row in doc.items():
            if state.startswith("_") or not isinstance(row, dict):
                continue
            lbs, code = row.get("emissions"), row.get("regionCode")
            if isinstance(lbs, (int, float)) and code:
                out[f"USA-{str(code).upper()}"] = (state.title(), float(lbs) * LB_PER_MWH_IN_G_PER_KWH,
                                                   src.get("year") or _int(f.parent.name), label)
    return out


def _int(s: str) -> int | None:
    return int(s) if s.isdigit() else None


def lookup(code: str, root: Path | None = None, version: str | None = None) -> Intensity:
    """The carbon intensity of region ``code`` (case-insensitive). UserError (one line)
    for an unknown code, saying how to list the valid ones."""
    if root is None:
        root, version = data_root()
    table = regions(root)
    key = code.strip().upper()
    if key not in table:
        import difflib

        close = difflib.get_close_matches(key, list(table), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"--region {code}: unknown region{hint}; valid codes: ISO 3166 alpha-3 countries (FRA, USA, "
                        "...) and USA-<state> (USA-CA); list them with: hwbench procure --list-regions")
    name, g, year, source = table[key]
    return Intensity(key, name, g, year, f"codecarbon {version or '?'}, {source}")


def apply(prices, grid: Intensity):
    """``prices`` (a :class:`hwbench.prices.PriceSpec`) with ``grid``'s intensity
    wherever the price file did not give ``carbon_g_per_kwh`` (a machine's own figure
    or the file's ``[defaults]`` one wins). Returns (the new spec, the refs of the
    machines that kept their own figure)."""
    from dataclasses import replace

    out, kept = [], []
    for p in prices.prices:
        if "carbon_g_per_kwh" in p.site.assumed:
            site = replace(p.site, carbon_g_per_kwh=grid.g_per_kwh,
                           assumed=tuple(k for k in p.site.assumed if k != "carbon_g_per_kwh"))
            out.append(replace(p, site=site))
        else:
            out.append(p)
            kept.append(p.ref)
    assumed = tuple(k for k in prices.defaults_assumed if k != "carbon_g_per_kwh")
    return replace(prices, prices=tuple(out), defaults_assumed=assumed), kept


def list_regions(root: Path | None = None) -> list[str]:
    """One line per region: code, gCO2e/kWh, name and year."""
    if root is None:
        root, _ = data_root()
    return [f"{code:<8} {g:>6.0f} gCO2e/kWh  {name} ({year or '?'})"
            for code, (name, g, year, _) in sorted(regions(root).items())]
