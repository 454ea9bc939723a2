"""Activity of one frame read back from the simulator's waveform (FST from Icarus, VCD from Verilator).

Two independent energy proxies come out of the same dump (the energy proxy of rtl/README.md):

* events: cycles in which the datapath and buffer enables are high, mapped to the events of
  model/hw/energy_table.toml (MACs, window reads, buffer reads and writes, mask and average reads).
  Which signal stands for which event is published by the RTL itself
  (`rtl.conv2d.VelcroConv2d.ACTIVITY_PROBES`), so a rename in the design cannot go unnoticed here;
* toggles: bit flips of every signal in the design, split into the MAC datapath (the instance's
  `VelcroConv2d.MAC_SCOPE` submodule: products, accumulator, scaled product, result and their
  pipeline valids) and the rest, and also per submodule of the instance (signals of the instance
  itself under "top"), which shows where a change of activity comes from. The clock is left out;
  aliases of one net are counted once, under the first name in sorted order.

pywellen reads both formats, so no FST->VCD conversion is needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pywellen

from rtl.conv2d import VelcroConv2d

# Event name -> [(signal path under the instance scope, events per high cycle)], as the RTL names them.
EVENT_PROBES = VelcroConv2d.ACTIVITY_PROBES
MAC_SCOPE = VelcroConv2d.MAC_SCOPE


@dataclass
class FrameActivity:
    events: dict[str, int]
    toggles_mac: int
    toggles_rest: int
    toggles_by_scope: dict[str, int]  # submodule of the instance ("top": the instance's own signals)


def _as_int(value) -> int:
    """Waveform values are ints, or strings when they hold x/z: count those bits as 0."""
    if isinstance(value, int):
        return value
    return int("".join(c if c in "01" else "0" for c in str(value)) or "0", 2)


class Waveform:
    """A dump of one simulation, with times converted to picoseconds."""

    def __init__(self, path: Path):
        if not Path(path).is_file():
            raise FileNotFoundError(f"waveform {path} not found: run the bench with waves enabled")
        self.wave = pywellen.Waveform(str(path))
        ts = self.wave.timescale
        unit_ps = {"fs": 1e-3, "ps": 1, "ns": 1e3, "us": 1e6, "ms": 1e9, "s": 1e12}
        self.ps_per_step = ts.factor * unit_ps[str(ts.unit).split(".")[-1].lower()]
        self.vars = {v.full_name: v for v in self.wave.all_vars()}

    def _changes(self, var, start_ps: int, end_ps: int):
        """(time_ps, value) changes inside [start, end), preceded by the value at `start`."""
        before = 0
        inside = []
        for time, value in var.tv:
            t = time * self.ps_per_step
            if t <= start_ps:
                before = value
            elif t < end_ps:
                inside.append((t, value))
            else:
                break
        return before, inside

    def high_cycles(self, name: str, start_ps: int, end_ps: int, clock_ps: int) -> int:
        var = self.vars.get(name)
        if var is None:
            raise KeyError(f"signal {name} not in the waveform (known e.g.: {sorted(self.vars)[:5]})")
        value, changes = self._changes(var, start_ps, end_ps)
        high, last = 0, start_ps
        for t, new in changes:
            high += (t - last) if _as_int(value) else 0
            value, last = new, t
        high += (end_ps - last) if _as_int(value) else 0
        return round(high / clock_ps)

    def frame_activity(self, scope: str, start_ps: int, end_ps: int, clock_ps: int) -> FrameActivity:
        """Events and toggles of the instance at `scope` (e.g. 'velcro_conv2d') in [start, end)."""
        events = {
            event: sum(per * self.high_cycles(f"{scope}.{sig}", start_ps, end_ps, clock_ps) for sig, per in enables)
            for event, enables in EVENT_PROBES.items()
        }
        counted = set()
        toggles = {"mac": 0, "rest": 0}
        by_scope: dict[str, int] = {}
        for name, var in sorted(self.vars.items()):
            if not name.startswith(scope + ".") or name.rsplit(".", 1)[-1] == "clk":
                continue
            ref = var.signal_ref
            if ref in counted:
                continue
            counted.add(ref)
            aliases_in_mac = name.startswith(f"{scope}.{MAC_SCOPE}.")
            value, changes = self._changes(var, start_ps, end_ps)
            flips = 0
            previous = _as_int(value)
            for _, new in changes:
                current = _as_int(new)
                flips += bin(previous ^ current).count("1")
                previous = current
            toggles["mac" if aliases_in_mac else "rest"] += flips
            path = name[len(scope) + 1 :].split(".")
            submodule = path[0] if len(path) > 1 else "top"
            by_scope[submodule] = by_scope.get(submodule, 0) + flips
        return FrameActivity(events, toggles["mac"], toggles["rest"], by_scope)
