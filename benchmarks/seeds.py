"""The headline recipes over several seeds, and their summary as mean +- standard deviation
(docs/results.md).

  python benchmarks/seeds.py run classic --seeds 0 1 2 --out runs/seeds --threads 1
  python benchmarks/seeds.py summary runs/seeds/*/log.json

``run`` trains each seed with ``fastcnn train`` (one process per run, one after the other) into
OUT/RECIPE-seedS; ``summary`` reads the runs' log.json files and prints one markdown row per run
and one per recipe: the final test accuracy's mean and sample standard deviation, its distance
from the tutorial's 99.38 % and the 99.79 % record, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

# The recipes: the published DeepConvNet one (20 epochs, Adam 0.001, batch 100, all 60,000
# training images, the test set after every epoch as the book plots it) and the augmented one.
RECIPES = {
    "classic": ["--model", "deep", "--epochs", "20", "--val", "0", "--test-each-epoch"],
    "augmented": ["--model", "deep", "--epochs", "20", "--val", "0", "--test-each-epoch",
                  "--augment", "--schedule", "cosine"],
}  # fmt: skip
TUTORIAL = 0.9938  # the tutorial's DeepConvNet test accuracy
RECORD = 0.9979  # the record it cites


def recipe_of(config: dict) -> str:
    """Which recipe a run's logged config is (by its augmentation and schedule)."""
    augmented = config.get("augment") is not None and config["schedule"]["name"] == "cosine"
    return "augmented" if augmented else "classic"


def run(recipe: str, seeds: list[int], out: Path, threads: int | None) -> None:
    for seed in seeds:
        target = out / f"{recipe}-seed{seed}"
        if (target / "model.npz").exists():
            print(f"{target}: done already", flush=True)
            continue
        cmd = [sys.executable, "-m", "fastcnn", "train", *RECIPES[recipe], "--seed", str(seed),
               "--no-progress", "--out", str(target)]  # fmt: skip
        if threads is not None:
            cmd += ["--threads", str(threads)]
        print(" ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True)


def summary(logs: list[Path]) -> str:
    runs: dict[str, list[dict]] = {}
    for path in logs:
        log = json.loads(path.read_text())
        if log.get("status") != "finished":
            raise SystemExit(f"{path}: the run has not finished ({log.get('status')})")
        best = max(log["epochs"], key=lambda r: r.get("test_acc", 0.0))
        runs.setdefault(recipe_of(log["config"]), []).append(
            {
                "seed": log["config"]["seed"],
                "acc": log["report"]["accuracy"],
                "best": best.get("test_acc"),
                "best_epoch": best["epoch"],
                "wall": log["wall_time"],
                "fastcnn": log["machine"]["fastcnn"],
                "threads": log["machine"]["threads"],
            }
        )
    lines = ["| recipe | seed | test accuracy after 20 epochs | best epoch (test) | wall time |",
             "|---|---|---|---|---|"]  # fmt: skip
    totals = []
    for recipe in RECIPES:
        for r in sorted(runs.get(recipe, []), key=lambda r: r["seed"]):
            best = f"{100 * r['best']:.2f} % (epoch {r['best_epoch']})" if r["best"] else "-"
            lines.append(f"| {recipe} | {r['seed']} | {100 * r['acc']:.2f} % | {best} | "
                         f"{r['wall'] / 60:.1f} min, {r['threads']} thread(s) |")  # fmt: skip
        accs = [r["acc"] for r in runs.get(recipe, [])]
        if len(accs) >= 2:
            mean, std = statistics.mean(accs), statistics.stdev(accs)
            totals.append(
                f"| **{recipe}** | {len(accs)} seeds | **{100 * mean:.2f} % ± {100 * std:.2f}** | "
                f"{100 * (mean - TUTORIAL):+.2f} points from 99.38 %, "
                f"{100 * (mean - RECORD):+.2f} from 99.79 % | "
                f"{statistics.mean(r['wall'] for r in runs[recipe]) / 60:.1f} min mean |"
            )
    return "\n".join(lines + totals)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="train a recipe for each seed")
    p.add_argument("recipe", choices=RECIPES)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=Path("runs/seeds"))
    p.add_argument("--threads", type=int)
    p = sub.add_parser("summary", help="the markdown table of finished runs")
    p.add_argument("logs", type=Path, nargs="+", metavar="LOG")
    args = parser.parse_args(argv)
    if args.cmd == "run":
        run(args.recipe, args.seeds, args.out, args.threads)
    else:
        print(summary(args.logs))


if __name__ == "__main__":
    main()
