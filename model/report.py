"""`make algorithm-report`: VELCRO on the offline default, written to reports/algorithm/.

For each specialized task: baseline accuracy, the automatic threshold search judged on the tuning
images, the accuracy-vs-C curve with tuning and test accuracy side by side for every pick, the
largest C with no test loss, the share of compressed elements that are zero (paper Table 4), and
variance histograms of the task vs all ten classes (paper Figs 3–8); accuracy against MAC
reduction for VELCRO, zero-value prediction and both; and the prediction on the hardware layer's
int8 golden path. Numbers go to summary.json, prose to summary.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from model.deploy.e2e import prepare, run_paths
from model.velcro.analysis import plot_accuracy_vs_mac_reduction, plot_accuracy_vs_ratio, plot_variance_histograms
from model.velcro.compress import saving_ratio
from model.velcro.predict import PATTERNS, PredictionSearch
from model.nets.data import DEFAULT_PREP_FRACTION, fashion_task, split_task
from model.nets.default_model import HW_SITE, checkpoint_metadata, load_default_model
from model.velcro.evaluate import accuracy
from model.velcro.search import ThresholdSearch, TuningSet
from model.velcro.stats import ActivationStatistics

CURVE_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
ZP_RATIOS = (0.0, 0.1, 0.25, 0.5, 1.0)  # ZP_MAX_k = r × mean activation of output k
BOTH_AT = 0.3  # VELCRO's C under the prediction in the "both" curve
HW_IMAGES = 1000  # validation images of the hardware-layer prediction measurement


def mac_curves(model, stats, search, tuning, test, points) -> dict:
    """Accuracy vs MAC reduction: VELCRO (the curve's tuples), prediction (both patterns), both."""
    velcro = [
        {"mac_reduction": saving_ratio(stats.sites, [None if t is None else t for t in p["thresholds"]], stats.total_macs).mac_weighted_ratio,
         "test_accuracy": p["test_accuracy"], "saving_ratio": p["saving_ratio"]}
        for p in points
    ]
    methods = {"VELCRO": velcro}
    under = search.best_at(BOTH_AT)[1]  # a moderate VELCRO tuple under the prediction
    sweeps = [(pattern, None) for pattern in PATTERNS] + [("grid2", under)]
    for pattern, thresholds in tqdm(sweeps, desc="prediction sweeps", leave=False):
        zp = PredictionSearch(model, stats, tuning, pattern=pattern, thresholds=thresholds)
        rows = []
        for r in tqdm(ZP_RATIOS, desc=pattern, leave=False):
            predicting = zp.model_at(zp.uniform(r))
            acc = accuracy(predicting, *test)
            report = predicting.mac_report()
            rows.append({"ratio_to_layer_mean": r, "test_accuracy": acc, "mac_reduction": report.mac_reduction,
                         "mac_reduction_without_prediction": report.mac_reduction_without_prediction,
                         "predicted_fraction": report.predicted_fraction})
        name = f"prediction {pattern}" if thresholds is None else f"VELCRO C {BOTH_AT} + prediction {pattern}"
        methods[name] = rows
    return methods


def hw_layer_prediction(task: str, k: int = HW_IMAGES) -> dict:
    """GRID2 / CHECKER with ZP_MAX = 0 on the hardware layer, alone and over balanced T = 0.3 (int8 golden path)."""
    ctx = prepare(task, k, error_images=0)
    rows = []
    configs = [(None, "per-layer", None), (None, "per-layer", "grid2"), (None, "per-layer", "checker"),
               (0.3, "balanced", None), (0.3, "balanced", "grid2"), (0.3, "balanced", "checker")]
    for t, allocation, pattern in tqdm(configs, desc="hardware layer", leave=False):
        result = run_paths(ctx.export(t, allocation, zp_pattern=pattern, zp_max=0.0), ctx.images, ctx.labels, model=ctx.model)
        rows.append({"threshold": t, "allocation": allocation, "zp_pattern": pattern, "zp_max": 0.0,
                     "accuracy": result["accuracy"], "mac_reduction": result["mac_reduction"],
                     "predicted_fraction": result["predicted_fraction"]})
    return {"task": task, "images": k, "rows": rows}


def task_report(model, task: str, *, prep_fraction: float, tune_images: int | None, seed: int, out_dir: Path) -> dict:
    """Everything the report says about one task."""
    data = fashion_task(task)
    split = split_task(len(data.labels), prep_fraction=prep_fraction, tune_images=tune_images, seed=seed)
    test_images, test_labels = data.images[split.test], data.labels[split.test]
    stats = ActivationStatistics(model)
    stats.observe(data.images[split.prep])

    # "all classes" reference with the same number of images, drawn from all ten test classes
    everything = fashion_task("all")
    reference = split_task(len(everything.labels), prep_images=len(split.prep), seed=seed)
    all_stats = ActivationStatistics(model)
    all_stats.observe(everything.images[reference.prep])

    tuning = TuningSet(model, data.images[split.tune], data.labels[split.tune])
    search = ThresholdSearch(model, stats, tuning)
    best, _ = search.largest_lossless()
    baseline = accuracy(model, test_images, test_labels)
    points = []
    for target in tqdm(sorted(set(CURVE_RATIOS) | {round(best.saving_ratio, 4)}), desc=f"{task} curve", leave=False):
        point, thresholds = search.best_at(target)
        compressed = search.compressed(thresholds)
        points.append(
            {
                "saving_ratio": point.saving_ratio,
                "family": point.family,
                "tune_accuracy": point.tune_accuracy,
                "tune_lossless": tuning.lossless(point.score),
                "test_accuracy": accuracy(compressed, test_images, test_labels),
                "zero_fraction": compressed.zero_fraction(),
                "thresholds": point.thresholds,
            }
        )
    methods = mac_curves(model, stats, search, tuning, (test_images, test_labels), points)
    lossless = [p for p in points if p["test_accuracy"] >= baseline]
    largest = max(lossless, key=lambda p: p["saving_ratio"]) if lossless else None
    searched = next(p for p in points if abs(p["saving_ratio"] - best.saving_ratio) < 1e-3)
    histogram = plot_variance_histograms(
        {task: stats, "all classes": all_stats}, out_dir / f"variance_{task}.png", title=f"variance per layer: {task} vs all classes"
    )
    hw_ratio = float(stats.variance(HW_SITE).mean() / all_stats.variance(HW_SITE).mean())
    return {
        "task": task,
        "classes": list(data.classes),
        "prep_images": len(split.prep),
        "tune_images": len(split.tune),
        "test_images": len(split.test),
        "baseline_test_accuracy": baseline,
        "baseline_tune_accuracy": search.baseline,
        "lossless_rule": tuning.rule,
        "search_choice": searched,
        "largest_lossless_on_test": largest,
        "points": points,
        "explored_on_tuning": search.curve(),
        "hw_layer_variance_ratio_task_vs_all": hw_ratio,
        "histogram_png": histogram.name,
        "methods": methods,
    }


def write_markdown(summary: dict, out: Path) -> None:
    first = summary["tasks"][0]
    lines = [
        "# VELCRO on the offline default (Fashion-MNIST CNN)",
        "",
        f"Model: `model/nets/checkpoints/default_cnn.pt`, test accuracy on all 10 classes "
        f"{summary['model']['test_accuracy']:.4f}. Each task's test images are split once (seeded) into preprocessing "
        f"images ({summary['prep_fraction']:.1%}: the statistics), tuning images (what the search judges its candidates on) "
        "and test images (the accuracies stated here). C is the element-weighted saving ratio (Eq. 2); the first "
        f"activation output is never compressed. The search's pick is the largest lossless C: {first['lossless_rule']}.",
        "",
        "| task | prep / tune / test images | uncompressed acc: tune, test | search pick: C, tune acc, test acc | largest C with no test loss | zero share of compressed elements |",
        "|---|---|---|---|---|---|",
    ]
    for t in summary["tasks"]:
        pick, big = t["search_choice"], t["largest_lossless_on_test"]
        big_text = f"{big['saving_ratio']:.3f} ({big['family']}, acc {big['test_accuracy']:.4f})" if big else "none on the curve"
        zero = big["zero_fraction"] if big else pick["zero_fraction"]
        lines.append(
            f"| {t['task']} | {t['prep_images']} / {t['tune_images']} / {t['test_images']} | "
            f"{t['baseline_tune_accuracy']:.4f}, {t['baseline_test_accuracy']:.4f} | "
            f"{pick['saving_ratio']:.3f}, {pick['tune_accuracy']:.4f}, {pick['test_accuracy']:.4f} | {big_text} | {zero:.2%} |"
        )
    lines += ["", "## Accuracy vs C (test)", "", "![accuracy vs C](accuracy_vs_ratio.png)", ""]
    for t in summary["tasks"]:
        lines += [f"### {t['task']}", "", "| C | family | tune acc | lossless on tuning | test acc |", "|---|---|---|---|---|"]
        for p in sorted(t["points"], key=lambda p: p["saving_ratio"]):
            lines.append(f"| {p['saving_ratio']:.3f} | {p['family']} | {p['tune_accuracy']:.4f} | "
                         f"{'yes' if p['tune_lossless'] else 'no'} | {p['test_accuracy']:.4f} |")
        lines += [
            "",
            f"Variance per layer, {t['task']} vs all classes (hardware layer: mean variance ratio "
            f"{t['hw_layer_variance_ratio_task_vs_all']:.3f}):",
            "",
            f"![variance {t['task']}]({t['histogram_png']})",
            "",
        ]
    lines += ["## Accuracy vs MAC reduction: VELCRO, zero-value prediction, both", "",
              "MAC reduction = skipped MACs / MACs of the evaluated activation outputs (all but the first). "
              "Prediction: ZP_MAX_k = r × the mean activation of output k (r = 0: exact zeros only).", "",
              "![accuracy vs MAC reduction](accuracy_vs_mac_reduction.png)", ""]
    for t in summary["tasks"]:
        lines += [f"### {t['task']} (uncompressed test acc {t['baseline_test_accuracy']:.4f})", "",
                  "| method | parameter | MAC reduction | without prediction | test acc |", "|---|---|---|---|---|"]
        for method, rows in t["methods"].items():
            for r in rows:
                param = f"C {r['saving_ratio']:.3f}" if "saving_ratio" in r else f"r {r['ratio_to_layer_mean']:g}"
                lines.append(f"| {method} | {param} | {r['mac_reduction']:.3f} | {r.get('mac_reduction_without_prediction', r['mac_reduction']):.3f} | {r['test_accuracy']:.4f} |")
        lines.append("")
    hw = summary["hw_layer_prediction"]
    lines += [f"## Prediction on the hardware layer (int8 golden path, {hw['images']} {hw['task']} validation images, ZP_MAX = 0)", "",
              "| VELCRO mask | pattern | MACs skipped (int8) | predicted share | float acc | float+VELCRO+prediction acc | int8 golden acc |",
              "|---|---|---|---|---|---|---|"]
    for r in hw["rows"]:
        mask = "none" if r["threshold"] is None else f"T = {r['threshold']} {r['allocation']}"
        a = r["accuracy"]
        lines.append(f"| {mask} | {r['zp_pattern'] or 'off'} | {r['mac_reduction']['int8_golden']:.4f} | "
                     f"{r['predicted_fraction']['int8_golden']:.4f} | {a['float']:.4f} | {a['float_compressed']:.4f} | {a['int8_golden']:.4f} |")
    out.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/algorithm"))
    parser.add_argument("--tasks", default="footwear,tops")
    parser.add_argument("--prep-fraction", type=float, default=DEFAULT_PREP_FRACTION)
    parser.add_argument("--tune-images", type=int, help="tuning images per task (default: as velcro search)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hw-task", default="footwear", help="task of the hardware-layer prediction measurement")
    parser.add_argument("--hw-images", type=int, default=HW_IMAGES, help="its validation images")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    model = load_default_model()
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = [task_report(model, t.strip(), prep_fraction=args.prep_fraction, tune_images=args.tune_images, seed=args.seed, out_dir=args.out)
             for t in args.tasks.split(",")]
    hw = hw_layer_prediction(args.hw_task, args.hw_images)
    summary = {"model": checkpoint_metadata(), "prep_fraction": args.prep_fraction, "seed": args.seed, "tasks": tasks,
               "hw_layer_prediction": hw}
    plot_accuracy_vs_ratio({t["task"]: t for t in tasks}, args.out / "accuracy_vs_ratio.png")
    plot_accuracy_vs_mac_reduction({t["task"]: t for t in tasks}, args.out / "accuracy_vs_mac_reduction.png")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    write_markdown(summary, args.out / "summary.md")
    print(f"wrote {args.out}/summary.md in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
