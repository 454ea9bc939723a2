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

Errors of use print one line naming the problem and the fix, and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from model.deploy.export import export_layer, save_export
from model.deploy.masks import ALLOCATIONS
from model.errors import VelcroError
from model.nets.data import DEFAULT_PREP_FRACTION, fashion_task, imagenet_task, split_task
from model.nets.default_model import load_default_model
from model.nets.zoo import PAPER_MODELS, build_model
from model.velcro.compress import parse_threshold, parse_thresholds, saving_ratio
from model.velcro.evaluate import accuracy
from model.velcro.predict import PredictionSearch, parse_pattern, parse_zp_max, parse_zp_maxes, pattern_name, predicting_model
from model.velcro.search import ThresholdSearch
from model.velcro.sites import find_sites
from model.velcro.stats import ActivationStatistics


def _example(args) -> torch.Tensor:
    if args.model == "default":
        return torch.zeros(1, 1, 28, 28)
    return torch.zeros(1, args.input_channels, args.input_size, args.input_size)


def _task(args):
    """(model, task data, split) from the common options."""
    model = build_model(args.model, args.weights)
    if args.data == "fashion":
        if args.model in PAPER_MODELS:
            raise VelcroError(f"{args.model} is an ImageNet model: give an ImageNet-layout folder with --data")
        data = fashion_task(args.task)
    else:
        data = imagenet_task(args.data, args.task)
    split = split_task(len(data.labels), prep_fraction=args.prep_fraction, prep_images=args.prep_images, seed=args.seed)
    return model, data, split


def _statistics(model, data, indices, batch_size: int, desc: str) -> ActivationStatistics:
    stats = ActivationStatistics(model)
    chunks = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    stats.observe_batches((data.images[c] for c in chunks), progress=True, desc=desc)
    return stats


def _load_or_observe(args, model, data, split) -> ActivationStatistics:
    if getattr(args, "stats", None):
        stats = ActivationStatistics(model)
        path = Path(args.stats)
        if not path.is_file():
            raise VelcroError(f"statistics file {path} does not exist; create it with `velcro stats --out {path}`")
        stats.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return stats
    return _statistics(model, data, split.prep, args.batch_size, "statistics")


def cmd_ratio(args) -> dict:
    model = build_model(args.model, args.weights)
    sites, total_macs = find_sites(model, _example(args))
    thresholds = parse_thresholds(args.thresholds, len(sites), percent=args.percent)
    return saving_ratio(sites, thresholds, total_macs).to_dict() | {"activation_outputs": len(sites)}


def cmd_stats(args) -> dict:
    model, data, split = _task(args)
    stats = _statistics(model, data, split.prep, args.batch_size, "statistics")
    torch.save(stats.state_dict(), args.out)
    return {"out": str(args.out), "images": stats.count, "activation_outputs": len(stats.sites), "sites": [s.name for s in stats.sites]}


def _check_zp_options(args) -> None:
    """Refuse a bad pattern or ZP_MAX before any data is loaded."""
    if args.zp is None:
        if args.zp_max is not None:
            raise VelcroError("--zp-max needs --zp grid2|checker (the prediction pattern)")
        return
    parse_pattern(args.zp)
    if args.zp_max is not None:
        for i, v in enumerate(v for v in str(args.zp_max).strip("()[] ").split(",") if v.strip() and v.strip() != "-"):
            parse_zp_max(v, name="--zp-max" if "," not in str(args.zp_max) else f"--zp-max entry {i}")


def cmd_eval(args) -> dict:
    if args.thresholds is None and args.zp is None:
        raise VelcroError("give --thresholds (VELCRO), --zp grid2|checker (zero-value prediction), or both")
    if args.val_images is not None and args.val_images < 1:
        raise VelcroError(f"--val-images {args.val_images}: evaluate at least one validation image")
    _check_zp_options(args)
    model, data, split = _task(args)
    stats = _load_or_observe(args, model, data, split)
    n = len(stats.sites)
    thresholds = parse_thresholds(args.thresholds, n, percent=args.percent) if args.thresholds is not None else [None] * n
    zp_maxes = parse_zp_maxes(args.zp_max if args.zp_max is not None else "0", n) if args.zp is not None else None
    compressed = predicting_model(model, stats, thresholds, zp_maxes, args.zp or "grid2")
    val = split.val if args.val_images is None else split.val[: args.val_images]
    val_images, val_labels = data.images[val], data.labels[val]
    ratio = saving_ratio(stats.sites, thresholds, stats.total_macs)
    compressed_accuracy = accuracy(compressed, val_images, val_labels, progress=True, desc="compressed")
    macs = compressed.mac_report()
    return {
        "task": str(args.task),
        "prep_images": len(split.prep),
        "val_images": len(val),
        "baseline_accuracy": accuracy(model, val_images, val_labels, progress=True, desc="baseline"),
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


def _search_prediction(args, model, data, split, stats) -> dict:
    prep_images, prep_labels = data.images[split.prep], data.labels[split.prep]
    n = len(stats.sites)
    thresholds = parse_thresholds(args.thresholds, n, percent=args.percent) if args.thresholds is not None else None
    search = PredictionSearch(model, stats, prep_images, prep_labels, pattern=args.zp, thresholds=thresholds)
    point = search.largest_lossless()
    predicting = search.model_at(point.ratios)
    val_images, val_labels = data.images[split.val], data.labels[split.val]
    val_accuracy = accuracy(predicting, val_images, val_labels, progress=True, desc="validation")
    macs = predicting.mac_report()
    return {
        "baseline_prep_accuracy": search.baseline,
        "chosen": {
            "zp_pattern": point.pattern,
            "family": point.family,
            "ratio_to_layer_mean": ",".join("-" if r is None else f"{r:.4g}" for r in point.ratios),
            "prep_accuracy": point.prep_accuracy,
            "prep_agreement": point.prep_agreement,
            "prep_mac_reduction": point.mac_reduction,
            "val_accuracy": val_accuracy,
            "baseline_val_accuracy": accuracy(model, val_images, val_labels, progress=True, desc="baseline"),
            "mac_reduction": macs.mac_reduction,
            "mac_reduction_without_prediction": macs.mac_reduction_without_prediction,
            "predicted_fraction": macs.predicted_fraction,
            "zp_max": ",".join("-" if z is None else f"{z:.6g}" for z in point.zp_maxes),
            "thresholds": None if thresholds is None else ",".join("-" if t is None else f"{float(t):.4f}" for t in thresholds),
        },
        "explored": search.curve(),
    }


def cmd_search(args) -> dict:
    if args.zp is not None:
        parse_pattern(args.zp)
        if args.target is not None:
            raise VelcroError("with --zp the search finds the largest lossless ZP_MAX tuple: use --lossless, not --target")
    elif args.thresholds is not None:
        raise VelcroError("--thresholds is for the prediction search (with --zp); the VELCRO search derives its own tuple")
    model, data, split = _task(args)
    stats = _load_or_observe(args, model, data, split)
    if args.zp is not None:
        return _search_prediction(args, model, data, split, stats)
    prep_images, prep_labels = data.images[split.prep], data.labels[split.prep]
    search = ThresholdSearch(model, stats, lambda m: accuracy(m, prep_images, prep_labels))
    if args.target is not None:
        point, thresholds = search.best_at(args.target)
    else:
        point, thresholds = search.largest_lossless()
    compressed = search.compressed(thresholds)
    val_images, val_labels = data.images[split.val], data.labels[split.val]
    return {
        "baseline_prep_accuracy": search.baseline,
        "chosen": {
            "saving_ratio": point.saving_ratio,
            "family": point.family,
            "prep_accuracy": point.prep_accuracy,
            "val_accuracy": accuracy(compressed, val_images, val_labels, progress=True, desc="validation"),
            "baseline_val_accuracy": accuracy(model, val_images, val_labels, progress=True, desc="baseline"),
            "thresholds": ",".join("-" if t is None else f"{float(t):.4f}" for t in thresholds),
        },
        "explored": search.curve(),
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
        panels["all classes"] = _statistics(model, everything, ref_split.prep, args.batch_size, "all classes")
    out = Path(args.out)
    png = plot_variance_histograms(panels, out / f"variance_{str(args.task).replace(',', '_').replace('/', '-')}.png")
    return {"png": str(png)}


def cmd_export(args) -> dict:
    if args.zp is None and args.zp_max is not None:
        raise VelcroError("--zp-max needs --zp grid2|checker (the prediction pattern)")
    if args.zp is not None:
        parse_pattern(args.zp)
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="velcro", description="VELCRO value-locality compression")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_options(p):
        p.add_argument("--model", default="default", help="default | resnet18 | googlenet | mobilenet_v2 | alexnet | vgg16 | a torch.save(model) file")
        p.add_argument("--weights", help="state-dict file for a named model (never downloaded)")

    def task_options(p):
        model_options(p)
        p.add_argument("--data", default="fashion", help="fashion (offline default) or an ImageNet-layout folder")
        p.add_argument("--task", default="footwear", help="task name (footwear, tops, ...; cats, dogs, cars, ...) or comma-separated classes")
        p.add_argument("--prep-fraction", type=float, default=DEFAULT_PREP_FRACTION)
        p.add_argument("--prep-images", type=int, help="number of preprocessing images (overrides --prep-fraction)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--batch-size", type=int, default=256)

    def threshold_options(p, required=True):
        p.add_argument("--thresholds", required=required, help="comma-separated tuple, one per activation output or all but the first")
        p.add_argument("--percent", action="store_true", help="thresholds are percents (the paper's tables)")

    def zp_options(p, per_layer=True):
        p.add_argument("--zp", help="zero-value prediction pattern: grid2 (anchors: row and column even) or checker (row + column even)")
        p.add_argument("--zp-max", help="prediction threshold in the layer's units, >= 0 (0 = exact zeros; default 0)"
                       + ("; one value for all but the first output, or a per-output tuple like VELCRO's (- = off)" if per_layer else ""))

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
        p = sub.add_parser(name, help="top-1 accuracy before and after compression on the validation split")
        task_options(p)
        threshold_options(p, required=False)
        zp_options(p)
        p.add_argument("--val-images", type=int, help="evaluate only the first N validation images (default: all)")
        p.add_argument("--stats", help="statistics file from `velcro stats` (otherwise computed)")
        p.set_defaults(run=cmd_eval)

    p = sub.add_parser("search", help="find a threshold tuple automatically")
    task_options(p)
    goal = p.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target", type=float, help="target saving ratio C in [0, 1)")
    goal.add_argument("--lossless", action="store_true", help="largest C with no accuracy loss on the preprocessing images")
    p.add_argument("--zp", help="search the largest lossless ZP_MAX tuple of this prediction pattern (grid2 | checker) instead")
    threshold_options(p, required=False)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result = args.run(args)
    except VelcroError as err:
        print(f"velcro {args.command}: error: {err}", file=sys.stderr)
        return 2
    if getattr(args, "json", True):
        print(json.dumps(result, indent=1))
    else:
        print(f"saving_ratio {result['saving_ratio']:.4f}  mac_weighted_ratio {result['mac_weighted_ratio']:.4f}  "
              f"({result['activation_outputs']} activation outputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
