"""Fit and ship the calibration of the bundled `ledom-tiny` pair (reward -> P(correct)), and measure its error.

Everything runs through the project's own commands:

    python benchmarks/calibrate_ledom_tiny.py --work runs/calibration            # CPU: ~1 h on 2 busy cores
    python benchmarks/calibrate_ledom_tiny.py --work runs/calibration --ship     # also write the shipped file

1. `ledom-reason make-discrimination --split train` — gold vs 4 corrupted solutions per GSM8K *train* problem
   (the fit set; the bundled models were trained on GSM8K train, see "what this says" in the results), and
   `--split test` — the held-out set (GSM8K test problems, never used to fit or to choose anything).
2. `ledom-reason calibrate` for two scoring setups × two methods: reverse only (λ = 1, mean) and the pair
   (λ = 0.9, mean: the validated setting in ledom-tiny/ledom.json), Platt and isotonic. All four share one
   score cache (the pair run scores first; its scores carry both log-probs).
3. Per setup, the method with the lower *cross-validated* log-loss on the train set is shipped (the choice
   never looks at the test set); `--ship` writes it to ledom_reason/models/ledom-tiny/calibration.json.
4. Reports, reliability plots and a summary with machine, versions and date go to
   benchmarks/results/calibration/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
from pathlib import Path

from _commands import run_cli

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results/calibration"
SHIPPED = ROOT / "ledom_reason/models/ledom-tiny/calibration.json"
SETUPS = {"reverse_only": [], "pair": ["--forward-model", "ledom-tiny-forward"]}
METHODS = ("platt", "isotonic")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--work", default="runs/calibration", help="work folder (discrimination sets, score cache)")
    ap.add_argument("--train-limit", type=int, default=1100, help="first N GSM8K train problems to fit on")
    ap.add_argument("--test-limit", type=int, default=600, help="first N GSM8K test problems held out")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ship", action="store_true", help="write the chosen maps to the bundled model folder")
    args = ap.parse_args()
    w = Path(args.work).resolve()
    w.mkdir(parents=True, exist_ok=True)
    log = w / "log.txt"
    train, test = w / "disc_train.jsonl", w / "disc_test.jsonl"
    run_cli(["make-discrimination", "--dataset", "gsm8k", "--split", "train", "--limit", str(args.train_limit),
        "--k", "4", "--seed", "0", "--out", str(train)], log)
    run_cli(["make-discrimination", "--dataset", "gsm8k", "--split", "test", "--limit", str(args.test_limit),
        "--k", "4", "--seed", "0", "--out", str(test)], log)
    commands, runs = {}, {}
    for setup in ("pair", "reverse_only"):  # the pair first: its cached scores carry both log-probs
        for method in METHODS:
            name = f"{setup}_{method}"
            cmd = ["calibrate", "--model", "ledom-tiny", *SETUPS[setup], "--discrimination", str(train),
                   "--heldout", str(test), "--method", method, "--out", str(w / name / "calibration.json"),
                   "--report-dir", str(w / name), "--scores-cache", str(w / "scores.jsonl"), "--device", args.device]
            run_cli(cmd, log)
            commands[name] = "ledom-reason " + " ".join(cmd).replace(str(w), args.work)
            runs[name] = json.loads((w / name / "calibration_report.json").read_text())

    from ledom_reason.calibration import Calibration, save_calibration

    chosen = {}
    for setup in SETUPS:
        cv = {m: next(v for k, v in runs[f"{setup}_{m}"]["results"].items() if "CV" in k)["log_loss"] for m in METHODS}
        chosen[setup] = min(METHODS, key=lambda m, cv=cv: cv[m])
    if args.ship:
        if SHIPPED.exists():
            SHIPPED.unlink()
        for setup, method in chosen.items():
            save_calibration(SHIPPED, Calibration.from_dict(runs[f"{setup}_{method}"]["calibration"]))
        print(f"shipped {SHIPPED.relative_to(ROOT)}: " + ", ".join(f"{s}: {m}" for s, m in chosen.items()))

    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in runs:
        for f in ("calibration_report.md", "calibration_report.json", "reliability.png"):
            (RESULTS / name).mkdir(exist_ok=True)
            shutil.copy(w / name / f, RESULTS / name / f)
    write_summary(runs, chosen, commands, args)


def auc_sweep(args: argparse.Namespace) -> list[str]:
    """Markdown table: AUC over all candidates per (λ, normalisation), train and test, from the score cache."""
    from ledom_reason.eval.calibration import discrimination_examples, ranking_auc
    from ledom_reason.eval.score_cache import ScoreCache

    w = Path(args.work).resolve()
    cache = ScoreCache(w / "scores.jsonl")
    lams = (0.0, 0.3, 0.6, 0.9, 1.0)
    out = ["| set | normalise | " + " | ".join(f"λ = {x:g}" for x in lams) + " |", "| --- | --- |" + " ---: |" * len(lams)]
    for split in ("train", "test"):
        rows = [json.loads(x) for x in (w / f"disc_{split}.jsonl").read_text().splitlines()]
        scores = [[cache.get(r["question"], c) for c in r["candidates"]] for r in rows]
        for norm in ("mean", "sum"):
            aucs = [ranking_auc(*discrimination_examples(rows, scores, lam=x, normalize=norm)[:2]) for x in lams]
            out.append(f"| {split} | {norm} | " + " | ".join(f"{a:.3f}" for a in aucs) + " |")
    return out


def write_summary(runs: dict, chosen: dict, commands: dict, args: argparse.Namespace) -> None:
    import torch
    import transformers

    import ledom_reason

    lines = ["# Calibration of the bundled ledom-tiny pair", "",
             f"Regenerate: `python benchmarks/calibrate_ledom_tiny.py --work {args.work} --train-limit "
             f"{args.train_limit} --test-limit {args.test_limit}{' --ship' if args.ship else ''}`", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores ({platform.system()}), scored in fp32 on "
             f"{args.device}; Python {platform.python_version()}, torch {torch.__version__}, transformers "
             f"{transformers.__version__}, ledom-reason {ledom_reason.__version__}; {datetime.date.today()}.", "",
             f"Fit set: GSM8K **train** problems 1–{args.train_limit}, gold + 4 corrupted solutions each (label 1 = "
             f"gold). Held-out set: GSM8K **test** problems 1–{args.test_limit}, built the same way. ECE: 10 "
             "equal-width bins. CV: 5 folds over problems, train set only. Shipped method per setup: the lower "
             "CV log-loss (chosen without looking at the test set).", "",
             "| setup | method | ECE in-sample | ECE 5-fold CV | ECE held-out (test) | P(correct) range held-out "
             "| AUC held-out | Brier held-out (base-rate Brier) | shipped |",
             "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    for name, rep in runs.items():
        setup, method = name.rsplit("_", 1)
        res = rep["results"]
        ins = res["fit (in-sample)"]
        cv = next(v for k, v in res.items() if "CV" in k)
        ho = next(v for k, v in res.items() if k.startswith("held out"))
        cal = rep["calibration"]
        label = f"{setup} (λ = {cal['lam']:g}, {cal['normalize']})"
        lines.append(f"| {label} | {method} | {ins['ece']:.4f} | {cv['ece']:.4f} | {ho['ece']:.4f} | "
                     f"{ho['min_p']:.3f}–{ho['max_p']:.3f} | {ho['auc']:.3f} | {ho['brier']:.4f} "
                     f"({ho['brier_base_rate']:.4f}) | {'yes' if chosen[setup] == method else ''} |")
    lines += ["", "How well the absolute reward separates correct from corrupted candidates *across* problems (ROC AUC "
              "over all candidates, what any reward -> P(correct) map is limited by), per λ:", "", *auc_sweep(args)]
    lines += ["", "Commands:", ""] + [f"    {c}" for c in commands.values()] + [""]
    (RESULTS / "README.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
