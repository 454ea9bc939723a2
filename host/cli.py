"""`velcro`: the commands of model/cli.py, plus `velcro run`, which needs the host and so lives above model/.

    velcro run --export layer.npz [--images 32] [--device sim|xrt] [--sim verilator|icarus]
               [--schedule split|lpt|fixed] [--dispatch-us 100] [--prediction paying|all]
               [--xclbin velcro_krnl.xclbin] [--device-index 0] [--task footwear] [--out run.npz]

runs an exported layer (`velcro export`) on N test images of its task on the 16 compute units of
`velcro_krnl`, simulated (default) or on an Alveo card through XRT, as the scheduler plans it
(host/schedule.py; `--schedule fixed` keeps channel c on unit c). It prints JSON: the accuracy of
the model's remaining layers on the OFMAPs beside the float, float-compressed and int8-golden paths,
the counters every run wrote back, and the `schedule` object (makespan, bound, speedup, every job).
It fails unless every OFMAP equals the golden model's. Errors of use print one line and exit with
status 2, as in model/cli.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from host import schedule
from host.api import DEVICES, PREDICTION_CHOICES, ScheduleOptions, make_backend, run_export
from model import cli as model_cli
from model.deploy.export import load_export
from model.errors import VelcroError
from model.nets.default_model import load_default_model
from model.velcro.distributed import launched_by_torchrun
from sim.harness.runner import ROOT, SIMULATORS, BenchFailed, SimulatorMissing


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of images, 1 or more")
    return value


def cmd_run(args) -> dict:
    if launched_by_torchrun():
        raise VelcroError("velcro run drives the hardware from one process: start it without torchrun")
    if args.out is not None and args.out.suffix != ".npz":
        raise VelcroError(f"--out {args.out} must end in .npz")
    work = args.work if args.work is not None else ROOT / "sim_build" / f"host-{args.sim}"
    build_dir = None if args.work is None else work / "build"  # default: the kernel build `make sim` uses
    log = work / "simulator.log"
    backend = make_backend(args.device, sim=args.sim, xclbin=args.xclbin, device_index=args.device_index,
                           work=work, build_dir=build_dir, log=log)  # fmt: skip
    export = load_export(args.export)
    model = load_default_model(args.checkpoint)
    if args.device == "sim":
        work.mkdir(parents=True, exist_ok=True)
        log.write_text("")  # this run's output only
    where = (f"the simulated kernel ({args.sim}; output in {log})" if args.device == "sim"
             else f"XRT device {args.device_index} with {args.xclbin}")  # fmt: skip
    options = ScheduleOptions(plan=args.schedule, dispatch_us=args.dispatch_us, clock_mhz=args.clock_mhz, block=args.block)
    print(f"[velcro run] {args.export}: {args.images} images, 16 compute units planned {args.schedule!r}, on {where}",
          file=sys.stderr)  # fmt: skip
    try:
        summary, run = run_export(export, args.images, backend, model=model, task=args.task, options=options,
                                  prediction=args.prediction)  # fmt: skip
    except (BenchFailed, SimulatorMissing) as err:
        raise VelcroError(str(err)) from None
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        cycles = {} if run.run_cycles is None else {"run_cycles": run.run_cycles, "frame_end_cycles": run.frame_end_cycles}
        np.savez(args.out, ofmaps=run.ofmaps, ifmaps=run.ifmaps, images=run.images, **cycles)
    return {"export": str(args.export)} | summary | {"out": None if args.out is None else str(args.out)}


def add_run_command(sub) -> None:
    p = sub.add_parser("run", help="an exported layer on the kernel's 16 compute units: simulated, or on an Alveo card")
    p.add_argument("--export", type=Path, required=True, help="layer export from `velcro export` (.npz)")
    p.add_argument("--images", type=_count, default=32, help="test images of the task, one frame per channel each (default 32)")
    p.add_argument("--schedule", choices=schedule.PLANS, default=schedule.DEFAULT_PLAN,
                   help="split: channels cut into image blocks that end the units together (default); lpt: blocks of "
                   "--block images, longest first; fixed: channel c on unit c")
    p.add_argument("--block", type=_count, default=schedule.DEFAULT_BLOCK, help="images per job of --schedule lpt (default 64)")
    p.add_argument("--dispatch-us", type=float, default=schedule.DEFAULT_DISPATCH_US,
                   help="host dispatch latency per run in µs, counted on the timeline (default 100: XRT's 50-100 µs "
                   "per kernel launch, Xilinx/XRT issue #8687)")
    p.add_argument("--prediction", choices=PREDICTION_CHOICES, default="paying",
                   help="paying: zero-value prediction only on the channels where the tuning images say it saves "
                   "cycles (default); all: as exported")
    p.add_argument("--device", choices=DEVICES, default="sim", help="sim: the simulated kernel (default); xrt: a card")
    p.add_argument("--sim", choices=SIMULATORS, default="verilator", help="simulator of --device sim (default verilator)")
    p.add_argument("--work", type=Path, help="--device sim: folder for the simulator build, job files and log "
                   "(default sim_build/host-<sim>, building in the kernel build `make sim` uses)")
    p.add_argument("--xclbin", type=Path, help="the card's binary from `make xclbin` (--device xrt)")
    p.add_argument("--device-index", type=int, default=0, help="XRT device index (--device xrt; default 0)")
    p.add_argument("--task", help="task whose test images run (default: the export's)")
    p.add_argument("--checkpoint", help="default-CNN checkpoint the export was made from (default: the committed one)")
    p.add_argument("--clock-mhz", type=float, default=300.0, help="clock for images/s and the dispatch latency in cycles (default 300)")
    p.add_argument("--out", type=Path, help="write OFMAPs, IFMAPs and the images with their counters here (.npz)")
    p.set_defaults(run=cmd_run)


def main(argv: list[str] | None = None) -> int:
    return model_cli.main(argv, extra_commands=add_run_command)


if __name__ == "__main__":
    sys.exit(main())
