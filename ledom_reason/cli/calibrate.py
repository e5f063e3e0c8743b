"""``ledom-reason calibrate``: fit reward → P(correct) on a discrimination set and store it next to the model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ledom_reason.cli._common import located_score_fn, read_rows


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate", help="fit a calibrated P(correct) for a verifier on a discrimination set",
        description="Scores every candidate of a discrimination set (gold vs corrupted solutions, from "
        "`ledom-reason make-discrimination`), fits a monotone map from the reward (λ, normalisation) to "
        "P(correct), reports its calibration error (ECE: in-sample, cross-validated over problems, and on "
        "--heldout sets) with a reliability plot, and stores the map in the model folder's calibration.json, "
        "where ReverseScorer.from_pretrained picks it up (scores then carry p_correct).")
    p.add_argument("--model", required=True, help="reverse model folder or bundled name (e.g. ledom-tiny)")
    p.add_argument("--forward-model", help="forward model folder or bundled name (the reward then mixes both)")
    p.add_argument("--discrimination", required=True,
                   help="discrimination JSONL to fit on (e.g. --dataset gsm8k --split train; never your test data)")
    p.add_argument("--heldout", action="append", default=[], help="discrimination JSONL to report ECE on (repeat)")
    p.add_argument("--lam", type=float, default=None,
                   help="λ of the reward (default: the model's validated λ from its ledom.json with "
                        "--forward-model, else 1 = reverse only)")
    p.add_argument("--normalize", default=None, choices=["sum", "mean"],
                   help="log-prob normalisation (default: the model's metadata, else mean)")
    p.add_argument("--method", default="platt", choices=["platt", "isotonic"],
                   help="platt: sigmoid(a·reward + b), 2 parameters (default); isotonic: monotone steps")
    p.add_argument("--bins", type=int, default=10, help="equal-width bins of the ECE and the plot")
    p.add_argument("--folds", type=int, default=5, help="folds (over problems) of the cross-validated ECE")
    p.add_argument("--out", default=None,
                   help="calibration file to add the map to (default: <model folder>/calibration.json)")
    p.add_argument("--report-dir", default="calibration_report",
                   help="folder for the report (json, md), the reliability plot and the score cache (resumable)")
    p.add_argument("--scores-cache", default=None,
                   help="score cache JSONL (default: <report-dir>/scores.jsonl); share one between runs on the same "
                        "models (score with the forward model first: its entries serve λ = 1 too)")
    p.add_argument("--device", default=None, help="cpu, cuda, … (default: cuda if available)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    p.add_argument("--batch-tokens", type=int, default=16384, help="token budget per model pass")
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> tuple[float, Any]:
    from ledom_reason.cli import CLIError
    from ledom_reason.models import model_metadata
    from ledom_reason.reward import validate_reward_args

    meta = model_metadata(args.model)
    spec = meta.get("reward" if args.forward_model else "reverse_only_reward") or {}
    lam = args.lam if args.lam is not None else spec.get("lam", None if args.forward_model else 1.0)
    if lam is None:
        raise CLIError("--lam is needed with --forward-model (the model's ledom.json has no validated λ)")
    normalize = args.normalize or spec.get("normalize", "mean")
    validate_reward_args(lam, normalize)
    if lam < 1 and not args.forward_model:
        raise CLIError(f"--lam {lam} < 1 needs --forward-model")
    return float(lam), normalize


def _scores(args: argparse.Namespace, files: list[str], cache: Any) -> dict[str, tuple[list[dict[str, Any]], list[Any]]]:
    """Rows and per-candidate scores of each discrimination file (scoring only what the cache lacks)."""
    from ledom_reason.scorers.local import ReverseScorer

    located = {f: read_rows(f, required=("question", "candidates", "labels")) for f in files}
    where: dict[tuple[str, str], str] = {}
    for rows in located.values():
        for w, r in rows:
            for k, c in enumerate(r["candidates"]):
                where.setdefault((r["question"], c), f"{w}: candidates[{k}]")
    pairs = [(r["question"], c) for rows in located.values() for _, r in rows for c in r["candidates"]]
    if cache.missing(pairs):
        scorer = ReverseScorer.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                               forward_model=args.forward_model, batch_tokens=args.batch_tokens,
                                               calibration=None)
        cache.ensure(scorer, pairs, located_score_fn(where), chunk=512)
    return {f: ([r for _, r in rows], [[cache.get(r["question"], c) for c in r["candidates"]] for _, r in rows])
            for f, rows in located.items()}


def run(args: argparse.Namespace) -> int:
    import datetime
    import platform

    from ledom_reason._version import __version__
    from ledom_reason.calibration import fit_calibration, model_fingerprint, save_calibration
    from ledom_reason.cli import CLIError
    from ledom_reason.eval.calibration import (
        calibration_metrics,
        cross_validated_probs,
        discrimination_examples,
        evaluate_calibration,
        reliability_plot,
    )
    from ledom_reason.eval.score_cache import ScoreCache
    from ledom_reason.io import atomic_open
    from ledom_reason.models import model_label
    from ledom_reason.scorers.local import model_folder

    lam, normalize = _settings(args)
    folder = model_folder(args.model)
    if folder is None or not folder.is_dir():
        raise CLIError(f"model folder not found: {args.model}")
    fwd_folder = model_folder(args.forward_model) if args.forward_model else None
    if args.forward_model and fwd_folder is None:
        raise CLIError(f"forward model folder not found: {args.forward_model}")
    report = Path(args.report_dir)
    cache = ScoreCache(args.scores_cache or report / "scores.jsonl")
    data = _scores(args, [args.discrimination, *args.heldout], cache)
    rows, scores = data[args.discrimination]
    if any("/test/" in str(r.get("id", "")) for r in rows):
        print(f"warning: {args.discrimination} holds test-split problems: fit on training data and keep the test "
              "set for --heldout, or the held-out error means nothing", file=sys.stderr)

    rewards, labels, groups = discrimination_examples(rows, scores, lam=lam, normalize=normalize)
    fitted_on = {"file": Path(args.discrimination).name, "problems": len(rows), "candidates": len(rewards),
                 "date": datetime.date.today().isoformat(), "ledom_reason": __version__,
                 "python": platform.python_version()}
    fps = {"model": model_fingerprint(folder),
           "forward_model": model_fingerprint(fwd_folder) if fwd_folder is not None else None}
    cal = fit_calibration(rewards, labels, method=args.method, lam=lam, normalize=normalize,
                          forward_model=model_label(args.forward_model) if args.forward_model else None,
                          fingerprints=fps, fitted_on=fitted_on)
    results: dict[str, Any] = {
        "fit (in-sample)": calibration_metrics([cal.p_of_reward(r) for r in rewards], labels, bins=args.bins),
        f"fit ({args.folds}-fold CV over problems)": calibration_metrics(
            cross_validated_probs(rewards, labels, groups, method=args.method, folds=args.folds), labels,
            bins=args.bins),
    }
    for f in args.heldout:
        results[f"held out: {Path(f).name}"] = evaluate_calibration(cal, *data[f], bins=args.bins)
    cal.fitted_on.update({"ece_in_sample": results["fit (in-sample)"]["ece"],
                          "ece_cv": results[f"fit ({args.folds}-fold CV over problems)"]["ece"]})
    out = save_calibration(args.out or folder, cal)

    setup = f"{model_label(args.model)}" + (f" + {model_label(args.forward_model)}" if args.forward_model else "")
    title = f"{setup}: {args.method}, λ = {lam:g}, {normalize}"
    plot = reliability_plot(results, report / "reliability.png", title=title)
    summary = {"calibration": cal.to_dict(), "calibration_file": str(out), "results": results,
               "command": " ".join(["ledom-reason", *sys.argv[1:]]) if sys.argv[1:] else None}
    with atomic_open(report / "calibration_report.json") as f:
        json.dump(summary, f, indent=2)
    md = _markdown(title, cal, results)
    with atomic_open(report / "calibration_report.md") as f:
        f.write(md)
    sys.stdout.write(md + f"\nwrote {out} (the map) and {report}/calibration_report.md, .json, {plot.name}\n")
    return 0


def _markdown(title: str, cal: Any, results: dict[str, Any]) -> str:
    p = cal.params
    form = (f"p = sigmoid({p['a']:.4g} · reward + {p['b']:.4g})" if cal.method == "platt"
            else f"isotonic, {len(p['x'])} knots")
    lines = [f"Calibration of {title}", "", f"Map: {form}; reward = (1 − λ)·log P_fwd + λ·log P_rev "
             f"({cal.normalize}), fitted base rate {cal.base_rate:.3f}", "",
             "| data | candidates | share correct | mean P(correct) | P(correct) range | ECE | Brier (base rate) "
             "| log-loss | AUC |", "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for name, m in results.items():
        lines.append(f"| {name} | {m['n']} | {m['base_rate']:.3f} | {m['mean_p']:.3f} | "
                     f"{m['min_p']:.3f}–{m['max_p']:.3f} | {m['ece']:.4f} | {m['brier']:.4f} "
                     f"({m['brier_base_rate']:.4f}) | {m['log_loss']:.4f} | {m['auc']:.3f} |")
    return "\n".join(lines) + "\n"
