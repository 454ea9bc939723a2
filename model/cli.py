"""`velcro`: statistics, compression / evaluation, threshold search, plots and saving ratio.

    velcro ratio  --model resnet18 --thresholds 34,36,30,... --percent --json
    velcro stats  --task footwear --out footwear.stats.pt
    velcro eval   --task footwear --thresholds 0,0.3,0.3,0.3,0.3          (alias: compress)
    velcro eval   --task footwear --zp grid2 --zp-max 0 [--thresholds ...]   (zero-value prediction)
    velcro search --task footwear --target 0.4 | --lossless
    velcro search --task footwear --lossless --zp grid2 [--thresholds ...]   (largest lossless ZP_MAX)
    velcro plots  --task footwear --out reports/algorithm/cli
    velcro export --task footwear --threshold 0.3 [--allocation balanced] [--zp grid2 --zp-max 0] --out hw_layer.npz
    (paper setting: --model resnet18 --weights resnet18.pth --data /imagenet/val --task cats)

A task's images are split into preprocessing (statistics), tuning (what `search` judges candidates
on) and test (what `eval` and `search` report) images. Every command but `export` also runs under
`torchrun --nproc-per-node N` (`model.velcro.distributed`): the ranks share the work, only rank 0
prints and writes files, and the JSON equals the single-process one.

Errors of use print one line naming the problem and the fix, and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path

import torch

from model.deploy.export import export_layer, save_export
from model.deploy.masks import ALLOCATIONS
from model.errors import VelcroError
from model.nets.data import DEFAULT_PREP_FRACTION, DEFAULT_TUNE_IMAGES, fashion_task, imagenet_task, split_task
from model.nets.default_model import load_default_model
from model.nets.zoo import PAPER_MODELS, build_model
from model.velcro.compress import LEFT_ALONE, check_percent_tuple, parse_threshold, parse_thresholds, saving_ratio, tuple_items
from model.velcro.distributed import DEFAULT_TIMEOUT, launched_by_torchrun, process_group
from model.velcro.evaluate import accuracy
from model.velcro.predict import PredictionSearch, parse_pattern, parse_zp_max, parse_zp_maxes, pattern_name, predicting_model
from model.velcro.search import ThresholdSearch, TuningSet
from model.velcro.sites import find_sites
from model.velcro.stats import ActivationStatistics


def _example(args) -> torch.Tensor:
    if args.model == "default":
        return torch.zeros(1, 1, 28, 28)
    return torch.zeros(1, args.input_channels, args.input_size, args.input_size)


def _task(args):
    """(model on this rank's device, task data, split) from the common options."""
    model = build_model(args.model, args.weights).to(args.sharding.device)
    if args.data == "fashion":
        if args.model in PAPER_MODELS:
            raise VelcroError(f"{args.model} is an ImageNet model: give an ImageNet-layout folder with --data")
        data = fashion_task(args.task)
    else:
        data = imagenet_task(args.data, args.task)
    split = split_task(
        len(data.labels), prep_fraction=args.prep_fraction, prep_images=args.prep_images, tune_images=args.tune_images, seed=args.seed
    )
    return model, data, split


def _statistics(args, model, data, indices, desc: str) -> ActivationStatistics:
    return ActivationStatistics(model).observe_split(
        data.images, indices, batch_size=args.batch_size, sharding=args.sharding, progress=True, desc=desc
    )


def _load_or_observe(args, model, data, split) -> ActivationStatistics:
    if getattr(args, "stats", None):
        stats = ActivationStatistics(model)
        path = Path(args.stats)
        if not path.is_file():
            raise VelcroError(f"statistics file {path} does not exist; create it with `velcro stats --out {path}`")
        stats.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return stats
    return _statistics(args, model, data, split.prep, "statistics")


class _Subset:
    """images[indices] without loading them: an ImageNet task's files are read only by the rank that needs them."""

    def __init__(self, images, indices: torch.Tensor) -> None:
        self.images, self.indices = images, indices

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        return self.images[self.indices[index]]


def _images(data, indices: torch.Tensor):
    return data.images[indices] if isinstance(data.images, torch.Tensor) else _Subset(data.images, indices)


def _accuracy(args, model, data, indices: torch.Tensor, desc: str) -> float:
    return accuracy(model, _images(data, indices), data.labels[indices], batch_size=args.batch_size,
                    sharding=args.sharding, progress=True, desc=desc)


def _tuning(args, model, data, split) -> TuningSet:
    return TuningSet(model, _images(data, split.tune), data.labels[split.tune], batch_size=args.batch_size, sharding=args.sharding,
                     progress=True)


def _test(args, split) -> torch.Tensor:
    """The test images a command reports on: all, or the first --test-images."""
    if args.test_images is None:
        return split.test
    if args.test_images < 1:
        raise VelcroError(f"--test-images {args.test_images}: report on at least one test image")
    return split.test[: args.test_images]


def _split_sizes(split, test) -> dict:
    return {"prep_images": len(split.prep), "tune_images": len(split.tune), "test_images": len(test)}


def cmd_ratio(args) -> dict:
    model = build_model(args.model, args.weights)
    sites, total_macs = find_sites(model, _example(args))
    thresholds = parse_thresholds(args.thresholds, len(sites), percent=args.percent)
    return saving_ratio(sites, thresholds, total_macs).to_dict() | {"activation_outputs": len(sites)}


def cmd_stats(args) -> dict:
    model, data, split = _task(args)
    stats = _statistics(args, model, data, split.prep, "statistics")
    if args.sharding.main:
        torch.save(stats.state_dict(), args.out)
    return {"out": str(args.out), "images": stats.count, "activation_outputs": len(stats.sites), "sites": [s.name for s in stats.sites]}


def _check_options(args) -> None:
    """Refuse an empty tuple, percents that are fractions, a bad pattern or a bad ZP_MAX before any data
    is loaded."""
    if args.thresholds is not None and not str(args.thresholds).strip("()[] ,"):
        raise VelcroError("the threshold tuple has 0 entries: give one threshold per activation output "
                          "(or all but the first), e.g. --thresholds 0.3,0.3,0.3,0.3")
    if args.percent and args.thresholds is not None:
        check_percent_tuple(args.thresholds, name="threshold tuple")
    if args.zp is None:
        if args.zp_max is not None:
            raise VelcroError("--zp-max needs --zp grid2|checker (the prediction pattern)")
        return
    parse_pattern(args.zp)
    if args.zp_max is not None:
        entries = tuple_items(str(args.zp_max), name="--zp-max tuple")
        for i, v in enumerate(entries):
            if v != LEFT_ALONE:
                parse_zp_max(v, name="--zp-max" if len(entries) == 1 else f"--zp-max entry {i}")


def cmd_eval(args) -> dict:
    if args.thresholds is None and args.zp is None:
        raise VelcroError("give --thresholds (VELCRO), --zp grid2|checker (zero-value prediction), or both")
    _check_options(args)
    model, data, split = _task(args)
    test = _test(args, split)
    stats = _load_or_observe(args, model, data, split)
    n = len(stats.sites)
    thresholds = parse_thresholds(args.thresholds, n, percent=args.percent) if args.thresholds is not None else [None] * n
    zp_maxes = parse_zp_maxes(args.zp_max if args.zp_max is not None else "0", n) if args.zp is not None else None
    compressed = predicting_model(model, stats, thresholds, zp_maxes, args.zp or "grid2")
    ratio = saving_ratio(stats.sites, thresholds, stats.total_macs)
    compressed_accuracy = _accuracy(args, compressed, data, test, "compressed")
    macs = compressed.mac_report(args.sharding)
    return {"task": str(args.task)} | _split_sizes(split, test) | {
        "baseline_accuracy": _accuracy(args, model, data, test, "baseline"),
        "compressed_accuracy": compressed_accuracy,
        "saving_ratio": ratio.saving_ratio,
        "mac_weighted_ratio": ratio.mac_weighted_ratio,
        "zero_fraction": compressed.zero_fraction(),
        "zp_pattern": None if args.zp is None else pattern_name(args.zp),
        "zp_max": None if zp_maxes is None else zp_maxes,
        "mac_reduction": macs.mac_reduction,
        "mac_reduction_without_prediction": macs.mac_reduction_without_prediction,
        "predicted_fraction": macs.predicted_fraction,
        "predicted_mac_fraction": macs.predicted_mac_fraction,
        "model_mac_fraction": macs.model_mac_fraction,
    }


def _search_prediction(args, model, data, test, stats, tuning: TuningSet) -> tuple[dict, list[dict]]:
    n = len(stats.sites)
    thresholds = parse_thresholds(args.thresholds, n, percent=args.percent) if args.thresholds is not None else None
    search = PredictionSearch(model, stats, tuning, pattern=args.zp, thresholds=thresholds)
    point = search.largest_lossless()
    predicting = search.model_at(point.ratios)
    test_accuracy = _accuracy(args, predicting, data, test, "test")
    macs = predicting.mac_report(args.sharding)
    return {
        "zp_pattern": point.pattern,
        "family": point.family,
        "ratio_to_layer_mean": ",".join(LEFT_ALONE if r is None else f"{r:.4g}" for r in point.ratios),
        "tune_agreement": point.tune_agreement,
        "tune_mac_reduction": point.mac_reduction,
        "tune_accuracy": point.tune_accuracy,
        "test_accuracy": test_accuracy,
        "mac_reduction": macs.mac_reduction,
        "mac_reduction_without_prediction": macs.mac_reduction_without_prediction,
        "predicted_fraction": macs.predicted_fraction,
        "zp_max": ",".join(LEFT_ALONE if z is None else f"{z:.6g}" for z in point.zp_maxes),
        "thresholds": None if thresholds is None else ",".join(LEFT_ALONE if t is None else f"{float(t):.4f}" for t in thresholds),
    }, search.curve()


def _search_velcro(args, model, data, test, stats, tuning: TuningSet) -> tuple[dict, list[dict]]:
    search = ThresholdSearch(model, stats, tuning)
    point, thresholds = search.best_at(args.target) if args.target is not None else search.largest_lossless()
    return {
        "saving_ratio": point.saving_ratio,
        "family": point.family,
        "tune_accuracy": point.tune_accuracy,
        "test_accuracy": _accuracy(args, search.compressed(thresholds), data, test, "test"),
        "thresholds": ",".join(LEFT_ALONE if t is None else f"{float(t):.4f}" for t in thresholds),
    }, search.curve()


def cmd_search(args) -> dict:
    if args.zp is not None:
        parse_pattern(args.zp)
        if args.target is not None:
            raise VelcroError("with --zp the search finds the largest lossless ZP_MAX tuple: use --lossless, not --target")
    elif args.thresholds is not None:
        raise VelcroError("--thresholds is for the prediction search (with --zp); the VELCRO search derives its own tuple")
    if args.percent and args.thresholds is not None:
        check_percent_tuple(args.thresholds, name="threshold tuple")
    model, data, split = _task(args)
    if len(split.tune) == 0:
        raise VelcroError("the search judges its candidates on tuning images: give --tune-images 1 or more (default 1000)")
    test = _test(args, split)
    stats = _load_or_observe(args, model, data, split)
    tuning = _tuning(args, model, data, split)
    if args.zp is not None:
        chosen, explored = _search_prediction(args, model, data, test, stats, tuning)
    else:
        chosen, explored = _search_velcro(args, model, data, test, stats, tuning)
    return {"task": str(args.task)} | _split_sizes(split, test) | {
        "lossless_rule": tuning.rule if args.lossless else None,
        "baseline_tune_accuracy": tuning.baseline.accuracy,
        "baseline_test_accuracy": _accuracy(args, model, data, test, "baseline"),
        "chosen": chosen,
        "explored": explored,
    }


def cmd_plots(args) -> dict:
    from model.velcro.analysis import plot_variance_histograms  # matplotlib is loaded only for plots

    model, data, split = _task(args)
    stats = _load_or_observe(args, model, data, split)
    reference = {"fashion": lambda: fashion_task("all")}.get(args.data)
    panels = {str(args.task): stats}
    if reference is not None:
        everything = reference()
        ref_split = split_task(len(everything.labels), prep_images=len(split.prep), seed=args.seed)
        panels["all classes"] = _statistics(args, model, everything, ref_split.prep, "all classes")
    out = Path(args.out) / f"variance_{str(args.task).replace(',', '_').replace('/', '-')}.png"
    if args.sharding.main:
        plot_variance_histograms(panels, out)
    return {"png": str(out)}


def cmd_export(args) -> dict:
    if args.zp is None and args.zp_max is not None:
        raise VelcroError("--zp-max needs --zp grid2|checker (the prediction pattern)")
    if args.zp is not None:
        parse_pattern(args.zp)
    if args.percent:
        check_percent_tuple([args.threshold], name="--threshold")
    zp_max = parse_zp_max(args.zp_max if args.zp_max is not None else 0, name="--zp-max")
    model = load_default_model(args.checkpoint)
    export = export_layer(
        args.task,
        parse_threshold(args.threshold, percent=args.percent),
        allocation=args.allocation,
        model=model,
        n_prep=args.prep_images,
        seed=args.seed,
        input_calibration=args.input_calibration,
        error_images=args.error_images,
        zp_pattern=args.zp,
        zp_max=zp_max,
    )
    path = save_export(export, args.out)
    return {"out": str(path)} | export.meta()


def _parser(extra_commands=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="velcro", description="VELCRO value-locality compression")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_options(p):
        p.add_argument("--model", default="default", help="default | resnet18 | googlenet | mobilenet_v2 | alexnet | vgg16 | a torch.save(model) file")
        p.add_argument("--weights", help="state-dict file for a named model (never downloaded)")

    def task_options(p):
        model_options(p)
        p.add_argument("--data", default="fashion", help="fashion (offline default) or an ImageNet-layout folder")
        p.add_argument("--task", default="footwear", help="task name (footwear, tops, ...; cats, dogs, cars, ...) or comma-separated classes")
        p.add_argument("--prep-fraction", type=float, default=DEFAULT_PREP_FRACTION, help="share of the task for the statistics")
        p.add_argument("--prep-images", type=int, help="number of preprocessing images (overrides --prep-fraction)")
        p.add_argument("--tune-images", type=int,
                       help=f"tuning images, what search judges candidates on (default {DEFAULT_TUNE_IMAGES}, at most half of the rest)")
        p.add_argument("--seed", type=int, default=0, help="seed of the preprocessing / tuning / test split")
        p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (and per share under torchrun)")
        p.add_argument("--dist-timeout", type=float, default=DEFAULT_TIMEOUT.total_seconds(),
                       help="under torchrun: seconds a rank waits for the others before the run fails")

    def threshold_options(p, required=True):
        p.add_argument("--thresholds", required=required, help="comma-separated tuple, one per activation output or all but the first")
        p.add_argument("--percent", action="store_true", help="thresholds are percents (the paper's tables)")

    def zp_options(p, per_layer=True):
        p.add_argument("--zp", help="zero-value prediction pattern: grid2 (anchors: row and column even) or checker (row + column even)")
        p.add_argument("--zp-max", help="prediction threshold in the layer's units, >= 0 (0 = exact zeros; default 0)"
                       + ("; one value for all but the first output, or a per-output tuple like VELCRO's (- = off)" if per_layer else ""))

    def test_options(p):
        p.add_argument("--test-images", type=int, help="report on the first N test images only (default: all)")

    p = sub.add_parser("ratio", help="compression-saving ratio of a threshold tuple (shapes only)")
    model_options(p)
    threshold_options(p)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--input-channels", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_ratio)

    p = sub.add_parser("stats", help="preprocessing statistics of a task, saved to a file")
    task_options(p)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_stats)

    for name in ("eval", "compress"):
        p = sub.add_parser(name, help="top-1 accuracy before and after compression on the test split")
        task_options(p)
        threshold_options(p, required=False)
        zp_options(p)
        test_options(p)
        p.add_argument("--stats", help="statistics file from `velcro stats` (otherwise computed)")
        p.set_defaults(run=cmd_eval)

    p = sub.add_parser("search", help="find a threshold tuple automatically")
    task_options(p)
    goal = p.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target", type=float, help="target saving ratio C in [0, 1)")
    goal.add_argument("--lossless", action="store_true", help="largest C with no accuracy loss on the tuning images")
    p.add_argument("--zp", help="search the largest lossless ZP_MAX tuple of this prediction pattern (grid2 | checker) instead")
    threshold_options(p, required=False)
    test_options(p)
    p.add_argument("--stats", help="statistics file from `velcro stats`")
    p.set_defaults(run=cmd_search)

    p = sub.add_parser("plots", help="variance histograms, task vs all classes (PNG)")
    task_options(p)
    p.add_argument("--stats", help="statistics file from `velcro stats`")
    p.add_argument("--out", default="reports/algorithm/cli")
    p.set_defaults(run=cmd_plots)

    p = sub.add_parser("export", help="the default CNN's hardware layer as 16 conv2d configurations (.npz)")
    p.add_argument("--task", default="footwear", help="Fashion-MNIST task whose statistics and calibration are used")
    p.add_argument("--threshold", default="0.3", help="T as a fraction in [0, 1) (or percent with --percent)")
    p.add_argument("--percent", action="store_true", help="--threshold is a percent")
    p.add_argument("--allocation", choices=ALLOCATIONS, default="per-layer",
                   help="per-layer: the ⌊T·65536⌋ lowest-variance elements of the layer (VELCRO); balanced: ⌊T·4096⌋ per channel")
    p.add_argument("--prep-images", type=int, help="preprocessing / calibration images (default 1.5 %% of the task)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-calibration", default="max", help="input scale from the calibration inputs' max, or a percentile like p99.99")
    p.add_argument("--error-images", type=int, default=64, help="validation images for the float-vs-int8 error (0: skip)")
    p.add_argument("--checkpoint", help="default-CNN checkpoint (default: the committed one)")
    zp_options(p, per_layer=False)
    p.add_argument("--out", type=Path, required=True, help="export file (.npz)")
    p.set_defaults(run=cmd_export)
    if extra_commands is not None:
        extra_commands(sub)
    return parser


def _run(args) -> dict:
    """The command in this process's place of a torchrun launch (or alone)."""
    if args.command == "export" and launched_by_torchrun():
        raise VelcroError("velcro export runs in one process (the hardware layer is small): start it without torchrun")
    timeout = timedelta(seconds=getattr(args, "dist_timeout", DEFAULT_TIMEOUT.total_seconds()))
    with process_group(timeout) as args.sharding:
        return args.run(args)


def main(argv: list[str] | None = None, *, extra_commands=None) -> int:
    """`extra_commands(subparsers)` adds the commands of a package above model/ (host/cli.py: `run`)."""
    args = _parser(extra_commands).parse_args(argv)
    try:
        result = _run(args)
    except VelcroError as err:
        sharding = getattr(args, "sharding", None)
        where = f" (rank {sharding.rank} of {sharding.world})" if sharding is not None and sharding.world > 1 else ""
        print(f"velcro {args.command}{where}: error: {err}", file=sys.stderr)
        return 2
    if not args.sharding.main:
        return 0
    if getattr(args, "json", True):
        print(json.dumps(result, indent=1))
    else:
        print(f"saving_ratio {result['saving_ratio']:.4f}  mac_weighted_ratio {result['mac_weighted_ratio']:.4f}  "
              f"({result['activation_outputs']} activation outputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
