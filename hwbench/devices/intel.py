"""Intel GPU energy from the kernel's hwmon interface (i915 and xe drivers): the only
module that reads ``/sys/class/drm/card*/device/hwmon/hwmon*/energy1_input``.

``energy1_input`` is the GPU's (card's) accumulated energy in µJ, converted here, once,
to J; reading it changes nothing on the device. Cards are numbered "xpu:<k>" in the
order of their DRM card number, taken to be Level Zero's enumeration order (unverified
on multi-GPU hardware; no Intel GPU was available to this project).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SYSFS = Path("/sys")
DRIVERS = ("i915", "xe")


@dataclass
class HwmonGpu:
    """One Intel GPU's hwmon directory; ``torch_device`` its name in results."""

    index: int
    path: Path
    torch_device: str
    errors: int = 0
    unsupported: frozenset = frozenset()
    power_source: str | None = None

    def energy_j(self) -> float | None:
        try:
            return int((self.path / "energy1_input").read_text().strip()) / 1e6
        except (OSError, ValueError):
            self.errors += 1
            return None

    def sample(self) -> dict[str, float]:
        e = self.energy_j()
        return {} if e is None else {"energy_counter_j": e}


def _card_number(p: Path) -> int:
    digits = "".join(ch for ch in p.name if ch.isdigit())
    return int(digits) if digits else 0


def gpus(root: Path | None = None) -> list[HwmonGpu]:
    """Every Intel GPU whose driver (i915 / xe) exposes an energy counter, in DRM card
    order, as xpu:0, xpu:1, ..."""
    root = SYSFS if root is None else root
    out: list[HwmonGpu] = []
    cards = sorted((root / "class" / "drm").glob("card[0-9]*"), key=_card_number)
    for card in cards:
        if "-" in card.name:  # connectors (card0-DP-1) are not GPUs
            continue
        for hw in sorted((card / "device" / "hwmon").glob("hwmon*")):
            try:
                name = (hw / "name").read_text().strip()
            except OSError:
                continue
            if name in DRIVERS and (hw / "energy1_input").exists():
                out.append(HwmonGpu(len(out), hw, f"xpu:{len(out)}"))
                break
    return out
