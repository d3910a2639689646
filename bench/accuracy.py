"""Accuracy table of every featx model on the GTZAN 30-second feature table.

For each model: 5-fold cross-validation split by track (out-of-fold accuracy,
mean over folds) and the fault-filtered split (train+valid lists -> test list).
Prints a Markdown table and writes the full metrics to --out (JSON).

    python bench/accuracy.py                         # every model, defaults
    python bench/accuracy.py --models mlp,svm --lstm-epochs 30
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROW_MODELS = ["mlp", "ensemble", "svm", "cnn", "lstm", "knn", "random-forest"]


def main(argv=None) -> None:
    shared = Path(os.environ.get("FEATX_SHARED_DATA",
                                 Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=shared / "gtzan" / "features_30_sec.csv")
    parser.add_argument("--split-dir", type=Path, default=shared / "gtzan" / "splits" / "fault_filtered")
    parser.add_argument("--models", default=",".join(ROW_MODELS))
    parser.add_argument("--splits", default="track,fault-filtered")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lstm-epochs", type=int, default=None,
                        help="cap the lstm's epochs (it is slow on CPU); default: the featx default")
    parser.add_argument("--out", type=Path, default=Path("accuracy_results.json"))
    args = parser.parse_args(argv)

    from featx.data.table import read_feature_csv
    from featx.training.config import TrainConfig
    from featx.training.cv import cross_validate

    table = read_feature_csv(args.csv)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for split in args.splits.split(","):
        for model in args.models.split(","):
            key = f"{model}/{split}/seed{args.seed}"
            if key in results:
                continue
            kwargs = {"split": split, "folds": 5 if split == "track" else 1, "seed": args.seed,
                      "refit": False}
            if split == "fault-filtered":
                kwargs["split_dir"] = str(args.split_dir)
            if model == "lstm" and args.lstm_epochs:
                kwargs["epochs"] = args.lstm_epochs
            config = TrainConfig(model=model, **kwargs)
            start = time.perf_counter()
            result = cross_validate(table, config, progress=False)
            m = result.metrics["track"]
            results[key] = {"accuracy": m["accuracy"], "std": m["std"]["accuracy"], "f1_macro": m["f1_macro"],
                            "per_fold": [f["accuracy"] for f in m["per_fold"]],
                            "seconds": time.perf_counter() - start, "config": result.config.to_dict()}
            print(f"{key}: accuracy {m['accuracy']:.4f} (f1 {m['f1_macro']:.4f}) "
                  f"in {results[key]['seconds']:.0f} s", flush=True)
            args.out.write_text(json.dumps(results, indent=2))
    print()
    print("| model | 5-fold track split: accuracy (± sd) | macro F1 | fault-filtered: accuracy | macro F1 |")
    print("|---|---|---|---|---|")
    for model in args.models.split(","):
        t = results.get(f"{model}/track/seed{args.seed}")
        f = results.get(f"{model}/fault-filtered/seed{args.seed}")
        cells = [f"{t['accuracy']:.3f} ± {t['std']:.3f}", f"{t['f1_macro']:.3f}"] if t else ["-", "-"]
        cells += [f"{f['accuracy']:.3f}", f"{f['f1_macro']:.3f}"] if f else ["-", "-"]
        print(f"| {model} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
