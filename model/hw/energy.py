"""Event-based energy proxy (rtl/README.md): events counted in simulation x energy per event + static.

The per-event energies live in `energy_table.toml` beside this file (versioned, each number with
its source) so users can swap in their own technology without touching code.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.hw.spec import BEATS_PER_FRAME, MACS_PER_OUTPUT, PIXELS_PER_BEAT, ZP_MAP_WRITE_CYCLES

DEFAULT_TABLE = Path(__file__).resolve().parent / "energy_table.toml"


@dataclass(frozen=True)
class EnergyTable:
    version: int
    technology: str
    event_pj: dict[str, float]
    static_mw: float

    @classmethod
    def load(cls, path: Path = DEFAULT_TABLE) -> "EnergyTable":
        data = tomllib.loads(Path(path).read_text())
        try:
            events = {name: float(entry["energy_pj"]) for name, entry in data["events"].items()}
            return cls(int(data["version"]), str(data["technology"]), events, float(data["static"]["power_mw"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"{path}: malformed energy table ({err!r}); it needs version, technology, "
                "[events.<name>] energy_pj = <pJ> entries and [static] power_mw"
            ) from None

    def frame_energy_pj(self, events: dict[str, int], cycles: int, clock_mhz: float) -> dict[str, float]:
        """Energy of one frame, split by event, plus static power over `cycles` clock periods."""
        unknown = set(events) - set(self.event_pj)
        if unknown:
            raise ValueError(f"events without an energy in the table: {sorted(unknown)}; add them to the table")
        split = {name: count * self.event_pj[name] for name, count in events.items()}
        split["static"] = self.static_mw * 1e-3 * cycles / (clock_mhz * 1e6) * 1e12
        split["total"] = sum(split.values())
        return split


def frame_events(mask: np.ndarray, result=None) -> dict[str, int]:
    """Events of one steady-state frame of the micro-architecture.

    From the mask alone for a frame without prediction. For a frame with zero-value prediction pass
    its `golden.FrameResult` (`result`; its `anchors` are all False with prediction off): the
    computed outputs then come from the data, the scanner reads the issue bits of the groups it visits
    in both phases (the MASK memory in phase A, phase B's memory in phase B), and the predicted-zero
    map counts as mask-side traffic: 16 writes (4 rows each) and one read per drain beat. What the
    waveform probes see is `rtl.conv2d.VelcroConv2d.ACTIVITY_PROBES`.
    The sweep (sim/flows/sweep.py) checks this against the events counted in the simulator's waveform
    at every point; other flows (hardware in the loop) then use it for masks they did not dump.
    """
    flat = np.asarray(mask, dtype=bool).reshape(-1)
    predicting = result is not None and bool(np.asarray(result.anchors).any())
    if predicting:
        computed = int(result.computed_outputs)
        issued = np.asarray(result.computed, dtype=bool).reshape(-1)
        anchors = np.asarray(result.anchors, dtype=bool).reshape(-1)
        scanned_groups = _scanned_groups(issued & anchors) + _scanned_groups(issued & ~anchors)  # phases A, B
        mask_reads = BEATS_PER_FRAME + scanned_groups + BEATS_PER_FRAME + ZP_MAP_WRITE_CYCLES  # + map reads, writes
    else:
        computed = int(flat.size - flat.sum()) if result is None else int(result.computed_outputs)
        mask_reads = BEATS_PER_FRAME + _scanned_groups(~flat)
    return {
        "mac": MACS_PER_OUTPUT * computed,
        "requant": computed,
        "ifmap_write": BEATS_PER_FRAME,
        "window_read": computed,
        "ofmap_write": computed,
        "ofmap_read": BEATS_PER_FRAME,
        "mask_read": mask_reads,
        "avg_read": 2 * BEATS_PER_FRAME,
    }


def _scanned_groups(issued: np.ndarray) -> int:
    """Groups of 8 outputs a scan reads the issue bits of: those with an issued output, and the end
    marker of a scan with none."""
    return max(int(issued.reshape(-1, PIXELS_PER_BEAT).any(axis=1).sum()), 1)
