"""Price files, workload-mix files and the shipped price catalogue: formats and strict
validation with one-line errors (the machinery of :mod:`hwbench.spec`).

A price file (TOML)::

    [defaults]                       # every machine unless it overrides them
    electricity_usd_per_kwh = 0.15
    pue = 1.3                        # data-centre power usage effectiveness
    carbon_g_per_kwh = 400           # grid carbon intensity, gCO2e/kWh
    lifetime_years = 4               # amortisation period when owning
    utilization = 0.8                # fraction of hours the machine does useful work

    [[machine]]
    match = "NVIDIA H100*"           # glob on the device name recorded in the results
    price_usd = 30000                # owning: purchase price of the device
    # usd_per_hour = 2.50            # or renting: all-in hourly price (energy included)
    source = "vendor quote 2026-10"  # where the price came from (required)
    date = "2026-10-15"

A machine has exactly one of ``price_usd`` (owning) or ``usd_per_hour`` (renting). It
may override any of the ``[defaults]`` and may name ``rental_usd_per_hour``, a rental
price that owning it is compared with (break-even utilisation). ``match`` is a glob
(``*``, ``?``, ``[...]``) on the recorded device name, case-insensitive; machines are
tried in file order and the first that matches prices the device.

A mix file (TOML) weighs workloads for the ranking of machines::

    [mix]
    name = "serving"                 # optional
    [weights]                        # glob on the case id -> relative weight
    "encoder:base/infer/bs32/*bf16*" = 50
    "decoder:xl/generate/*" = 30
    "cnn:resnet50/train/*" = 20

The catalogue shipped with hwbench (``hwbench/data/prices.csv``, ``--prices catalog``)
has one row per price with its ``source`` and ``date``; its defaults are those of
:class:`Defaults`. Every figure computed from it is an assumption, and says so.

Every error is a :class:`ConfigError` whose message is one line: file, field, what is
wrong, what is allowed.
"""

from __future__ import annotations

import csv
import datetime as _dt
import fnmatch
import io
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .spec import format_validation_error, parse_toml

CATALOG = "catalog"  # the --prices value that names the shipped catalogue
CATALOG_FILE = "hwbench/data/prices.csv"  # how errors and reports name it



# Upper bounds of the numbers in price and mix files (docs/procurement.md): far beyond any
# real figure, low enough that no cost, TCO or weighted mean computed from them overflows.
MAX_PRICE_USD = 1e9  # purchase price of one device
MAX_USD_PER_HOUR = 1e6  # hourly price of one device
MAX_USD_PER_KWH = 1e3
MAX_CARBON_G_PER_KWH = 1e4  # coal is about 1,000
MAX_WEIGHT = 1e9  # a mix weight (weights are relative)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Defaults(_Strict):
    """Site parameters shared by every machine (each may override them)."""

    electricity_usd_per_kwh: float = Field(0.15, ge=0, le=MAX_USD_PER_KWH, description="Price of electricity, USD/kWh")
    pue: float = Field(1.3, ge=1, le=5, description="Data-centre power usage effectiveness (facility / IT power)")
    carbon_g_per_kwh: float = Field(400, ge=0, le=MAX_CARBON_G_PER_KWH, description="Grid carbon intensity, gCO2e/kWh")
    lifetime_years: float = Field(4, gt=0, le=50, description="Amortisation period when owning, years")
    utilization: float = Field(0.8, gt=0, le=1, description="Fraction of hours the machine does useful work")


SITE_KEYS = tuple(Defaults.model_fields)


def _date(v: Any) -> str:
    # TOML has a native date type (date = 2026-10-15, unquoted); accept it and text
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", v):
        try:
            _dt.date.fromisoformat(v if len(v) == 10 else v + "-01")
            return v
        except ValueError:
            pass
    raise ValueError(f"must be a date YYYY-MM-DD or YYYY-MM, got {v!r}")


class Machine(_Strict):
    """One priced device: owned (``price_usd``) or rented (``usd_per_hour``)."""

    match: str = Field(min_length=1, max_length=200, description="Glob on the recorded device name, case-insensitive")
    name: str = Field("", max_length=200, description="A label for reports (default: the match glob)")
    price_usd: float | None = Field(None, gt=0, le=MAX_PRICE_USD, description="Owning: purchase price of the device, USD")
    usd_per_hour: float | None = Field(
        None, gt=0, le=MAX_USD_PER_HOUR, description="Renting: all-in hourly price, USD/h (energy included)")
    rental_usd_per_hour: float | None = Field(
        None, gt=0, le=MAX_USD_PER_HOUR,
        description="Owning only: a rental price to compare with (break-even utilisation), USD/h")
    source: str = Field(min_length=1, max_length=1000, description="Where the price came from (required)")
    date: Any = Field(description="When the price was quoted or read, YYYY-MM-DD")
    electricity_usd_per_kwh: float | None = Field(None, ge=0, le=MAX_USD_PER_KWH)
    pue: float | None = Field(None, ge=1, le=5)
    carbon_g_per_kwh: float | None = Field(None, ge=0, le=MAX_CARBON_G_PER_KWH)
    lifetime_years: float | None = Field(None, gt=0, le=50)
    utilization: float | None = Field(None, gt=0, le=1)

    @field_validator("date", mode="before")
    @classmethod
    def _date_field(cls, v):
        return _date(v)

    @field_validator("source")
    @classmethod
    def _source(cls, v):
        if not v.strip():
            raise ValueError("must name where the price came from")
        return v

    @model_validator(mode="after")
    def _one_price(self):
        if (self.price_usd is None) == (self.usd_per_hour is None):
            raise ValueError("give exactly one of price_usd (owning) or usd_per_hour (renting)")
        if self.rental_usd_per_hour is not None and self.price_usd is None:
            raise ValueError("rental_usd_per_hour applies to an owned machine (price_usd) only")
        return self

    @property
    def basis(self) -> str:
        """``own`` or ``rent``."""
        return "own" if self.price_usd is not None else "rent"

    @property
    def label(self) -> str:
        return self.name or self.match

    def matches(self, device_name: str) -> bool:
        return fnmatch.fnmatchcase(device_name.casefold(), self.match.casefold())


class PriceFile(_Strict):
    defaults: Defaults = Defaults()
    machine: list[Machine] = Field(min_length=1, description="One [[machine]] block per priced device")


class MixInfo(_Strict):
    name: str = Field("", max_length=200)
    description: str = Field("", max_length=2000)


class MixFile(_Strict):
    mix: MixInfo = MixInfo()
    weights: dict[str, float] = Field(min_length=1, description="Glob on the case id -> relative weight (> 0)")

    @field_validator("weights")
    @classmethod
    def _weights(cls, v):
        for glob, w in v.items():
            if not glob.strip():
                raise ValueError("an empty glob")
            if not 0 < w <= MAX_WEIGHT:
                raise ValueError(f"[{glob!r}] must be a positive number, got {w:g} (allowed: above 0, up to {MAX_WEIGHT:g})")
        return v


# ------------------------------------------------------------------ loaded values
@dataclass(frozen=True)
class Site:
    """The site parameters that apply to one machine, with where each came from."""

    electricity_usd_per_kwh: float
    pue: float
    carbon_g_per_kwh: float
    lifetime_years: float
    utilization: float
    assumed: tuple[str, ...] = ()  # keys that nobody wrote down: hwbench's defaults


@dataclass(frozen=True)
class Price:
    """One machine line of a price file, resolved against the defaults."""

    machine: Machine
    index: int  # position in the file (machine[i]; catalogue: row i + 2 of the CSV)
    ref: str  # "prices.toml machine[2]" / "hwbench/data/prices.csv row 4": where to read it
    site: Site
    assumption: bool  # from the shipped catalogue

    @property
    def basis(self) -> str:
        return self.machine.basis


@dataclass(frozen=True)
class PriceSpec:
    """A validated price file (or the catalogue)."""

    path: str
    prices: tuple[Price, ...]
    catalogue: bool = False
    defaults_assumed: tuple[str, ...] = field(default=())

    def lookup(self, device_name: str | None, basis: str = "any") -> Price | None:
        """The first price (file order) whose glob matches ``device_name`` and, unless
        ``basis`` is ``any``, whose basis (``own`` / ``rent``) is ``basis``."""
        if not device_name:
            return None
        for p in self.prices:
            if (basis == "any" or p.basis == basis) and p.machine.matches(device_name):
                return p
        return None

    def rental_for(self, price: Price, device_name: str) -> tuple[float | None, str | None]:
        """(rental USD/h, its source) to compare an owned machine with: its own
        ``rental_usd_per_hour``, else the first renting machine of this file that
        matches the same device."""
        if price.basis != "own":
            return None, None
        if price.machine.rental_usd_per_hour is not None:
            return float(price.machine.rental_usd_per_hour), f"{price.ref} rental_usd_per_hour"
        rent = self.lookup(device_name, "rent")
        if rent is None:
            return None, None
        return float(rent.machine.usd_per_hour), f"{rent.ref}: {rent.machine.source} ({rent.machine.date})"


@dataclass(frozen=True)
class Mix:
    """A validated mix file: (glob, weight) in file order."""

    path: str
    name: str
    weights: tuple[tuple[str, float], ...]


def _read_toml(path: str | Path, what: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read {what}: {e.strerror if isinstance(e, OSError) else e}") from None
    return parse_toml(text, str(path), f"a {what}")


def _site(defaults: Defaults, m: Machine, assumed: tuple[str, ...]) -> Site:
    vals = {k: float(getattr(m, k) if getattr(m, k) is not None else getattr(defaults, k)) for k in SITE_KEYS}
    return Site(**vals, assumed=tuple(k for k in assumed if getattr(m, k) is None))


# ------------------------------------------------------------------ loading
def parse_prices(data: dict[str, Any], path: str = "<prices>") -> PriceSpec:
    """A parsed price file -> :class:`PriceSpec`; ConfigError with one line."""
    try:
        spec = PriceFile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(path, e, PriceFile)) from None
    given = set(data.get("defaults", {}) or {})
    assumed = tuple(k for k in SITE_KEYS if k not in given)
    prices = tuple(
        Price(m, i, f"{path} machine[{i}]", _site(spec.defaults, m, assumed), assumption=False)
        for i, m in enumerate(spec.machine)
    )
    return PriceSpec(path=path, prices=prices, catalogue=False, defaults_assumed=assumed)


def load_prices(path: str | Path) -> PriceSpec:
    """A price file, or the shipped catalogue when ``path`` is ``catalog``."""
    if str(path) == CATALOG:
        return load_catalogue()
    return parse_prices(_read_toml(path, "price file"), str(path))


CATALOGUE_COLUMNS = ("match", "name", "price_usd", "usd_per_hour", "source", "date")


def parse_catalogue(text: str, path: str = CATALOG_FILE) -> PriceSpec:
    """The catalogue CSV (``CATALOGUE_COLUMNS``, one price a row) -> PriceSpec. The
    site parameters are :class:`Defaults`' (assumptions, listed as such)."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != CATALOGUE_COLUMNS:
        raise ConfigError(f"{path}: header must be {','.join(CATALOGUE_COLUMNS)}, got {','.join(reader.fieldnames or [])}")
    defaults = Defaults()
    prices = []
    for i, row in enumerate(reader):
        line = i + 2  # the header is line 1
        data: dict[str, Any] = {"match": row["match"], "name": row["name"], "source": row["source"], "date": row["date"]}
        for k in ("price_usd", "usd_per_hour"):
            if row[k]:
                try:
                    data[k] = float(row[k])
                except ValueError:
                    raise ConfigError(f"{path}: row {line}: {k}: not a number (got {row[k]!r})") from None
        try:
            m = Machine.model_validate(data)
        except ValidationError as e:
            raise ConfigError(format_validation_error(path, e, Machine, where=f"row {line}: ")) from None
        prices.append(Price(m, i, f"{path} row {line}", _site(defaults, m, SITE_KEYS), assumption=True))
    if not prices:
        raise ConfigError(f"{path}: no prices")
    return PriceSpec(path=path, prices=tuple(prices), catalogue=True, defaults_assumed=SITE_KEYS)


def load_catalogue() -> PriceSpec:
    """The price catalogue shipped with hwbench (package data)."""
    text = resources.files("hwbench.data").joinpath("prices.csv").read_text(encoding="utf-8")
    return parse_catalogue(text)


def parse_mix(data: dict[str, Any], path: str = "<mix>") -> Mix:
    try:
        spec = MixFile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(path, e, MixFile)) from None
    return Mix(path=path, name=spec.mix.name, weights=tuple((g, float(w)) for g, w in spec.weights.items()))


def load_mix(path: str | Path) -> Mix:
    return parse_mix(_read_toml(path, "mix file"), str(path))
