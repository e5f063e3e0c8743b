"""Tables and plots of the miniature replication, from the outputs of `benchmarks/replicate.py score`.

    python benchmarks/replication_report.py --work runs/replicate --out benchmarks/results/replication

Reads `res_disc/discrimination.json`, `disc_gsm8k.jsonl` (for the seeded random baseline) and the
`res_bon_*/summary.json` files; writes `replication.md`, `disc_lambda_sweep.png`, and copies the
Best-of-N plots. No model is loaded: every number comes from the cached scores of the score stage.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path


def random_baseline(disc_path: Path, seed: int = 0) -> dict[str, float]:
    """Top-1 and pairwise AUC of i.i.d. uniform scores on the same discrimination set (seeded)."""
    from ledom_reason.eval.stats import wilson_ci

    rng = random.Random(seed)
    rows = [json.loads(line) for line in disc_path.read_text().splitlines() if line.strip()]
    top1 = 0
    aucs = []
    for r in rows:
        s = [rng.random() for _ in r["candidates"]]
        g = r["labels"].index(1)
        top1 += max(range(len(s)), key=lambda i: (s[i], -i)) == g
        others = [s[i] for i in range(len(s)) if i != g]
        aucs.append(sum(1.0 if s[g] > o else 0.5 if s[g] == o else 0.0 for o in others) / len(others))
    lo, hi = wilson_ci(top1, len(rows))
    return {"top1": top1 / len(rows), "top1_ci": [lo, hi], "auc": sum(aucs) / len(aucs), "k": len(rows[0]["candidates"])}


def plot_disc(results: list[dict], rnd: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, name in ((axes[0], "top1", "top-1 accuracy (gold ranked first)"), (axes[1], "auc", "pairwise AUC")):
        for norm, style in (("sum", "o-"), ("mean", "s-")):
            rs = sorted((r for r in results if r["normalize"] == norm), key=lambda r: r["lam"])
            xs = [r["lam"] for r in rs]
            ax.plot(xs, [r[key] for r in rs], style, label=f"(1-λ)·fwd + λ·rev, {norm}")
            ci = [r[f"{key}_ci"] for r in rs]
            ax.fill_between(xs, [c[0] for c in ci], [c[1] for c in ci], alpha=0.15)
        ax.axhline(rnd[key], color="gray", ls="--", label="random")
        ax.set_xlabel("λ  (0 = forward twin only, 1 = reverse model only)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("ledom-tiny on GSM8K test: gold vs 4 corrupted solutions (1319 problems, 95% CI)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def fmt(x: float) -> str:
    return f"{100 * x:.1f}"


def main() -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("--work", required=True)
    p.add_argument("--out", default="benchmarks/results/replication")
    a = p.parse_args()
    w, out = Path(a.work), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    md: list[str] = []
    disc = json.loads((w / "res_disc/discrimination.json").read_text())
    rnd = random_baseline(w / "disc_gsm8k.jsonl")
    plot_disc(disc, rnd, out / "disc_lambda_sweep.png")
    (out / "discrimination.json").write_text(json.dumps({"results": disc, "random": rnd}, indent=1) + "\n")

    def row(label: str, r: dict) -> str:
        return (f"| {label} | {fmt(r['top1'])} [{fmt(r['top1_ci'][0])}, {fmt(r['top1_ci'][1])}] | "
                f"{r['auc']:.3f} [{r['auc_ci'][0]:.3f}, {r['auc_ci'][1]:.3f}] |")

    get = {(r["lam"], r["normalize"]): r for r in disc}
    best = max(disc, key=lambda r: r["top1"])
    val_rows: list[str] = []
    if (w / "res_disc_val/discrimination.json").exists():
        # λ and normalisation chosen on a held-out *synthetic* set (never on GSM8K test): the honest pick
        val = json.loads((w / "res_disc_val/discrimination.json").read_text())
        v = max(val, key=lambda r: (r["top1"], r["auc"]))
        val_rows = [row(f"(c) validated: λ = {v['lam']:g}, {v['normalize']} (argmax on held-out synthetic set: "
                        f"{fmt(v['top1'])} there)", get[(v["lam"], v["normalize"])])]
    md += ["## Verifier discrimination (GSM8K test, gold vs 4 corruptions, 1319 problems)", "",
           "| scorer | top-1 % [95% CI] | pairwise AUC [95% CI] |", "|---|---|---|",
           row("(a) reverse only, λ = 1 (sum = mean: same question tokens)", get[(1.0, "sum")]),
           row("(b) forward twin only, λ = 0, sum", get[(0.0, "sum")]),
           row("(b) forward twin only, λ = 0, mean", get[(0.0, "mean")]),
           *val_rows,
           row(f"(c) best of the test-set λ sweep, in hindsight: λ = {best['lam']:g}, {best['normalize']}", best),
           f"| (d) random (seeded) | {fmt(rnd['top1'])} [{fmt(rnd['top1_ci'][0])}, {fmt(rnd['top1_ci'][1])}] | {rnd['auc']:.3f} |",
           "", "Full λ sweep (0 … 1 in steps of 0.1, sum and mean) and per-corruption win rates: "
           "`discrimination.json`; plot: `disc_lambda_sweep.png`.", ""]
    for src in sorted(w.glob("res_bon_*")):
        if not (src / "summary.json").exists():
            continue
        s = json.loads((src / "summary.json").read_text())
        name = src.name.removeprefix("res_bon_")
        for f in ("acc_vs_n.png", "acc_vs_lambda.png"):
            if (src / f).exists():
                shutil.copy(src / f, out / f"bon_{name}_{f}")
        cfg = s["config"]
        what = {"gsm8k": "GSM8K test problems, forward-twin samples",
                "synth": "held-out synthetic problems (generator seed 12345, never trained on), forward-twin samples"}
        md += [f"## Best-of-N: {name} — {what.get(name.rsplit('_', 1)[0], name)} ({s['problems']} problems, N ≤ {s['max_candidates']}, λ = {cfg['lam']}, "
               f"normalise = {cfg['normalize']})", "", "| method | accuracy % [95% CI] |", "|---|---|"]
        md += [f"| {k} | {fmt(v['accuracy'])} [{fmt(v['ci95'][0])}, {fmt(v['ci95'][1])}] |" for k, v in s["table"].items()]
        ns = cfg["ns"]
        md += ["", "| accuracy vs N (%) | " + " | ".join(f"N={n}" for n in ns) + " |", "|---" * (len(ns) + 1) + "|"]
        md += [f"| {k} | " + " | ".join(fmt(acc) for _, acc in v) + " |" for k, v in s["accuracy_vs_n"].items()]
        lam = s.get("accuracy_vs_lambda") or {}
        if lam:
            lams = [x for x, _ in next(iter(lam.values()))]
            md += ["", "| accuracy vs λ (%) | " + " | ".join(f"{x:g}" for x in lams) + " |", "|---" * (len(lams) + 1) + "|"]
            md += [f"| {k} | " + " | ".join(fmt(acc) for _, acc in v) + " |" for k, v in lam.items()]
        md += [""]
    (out / "replication.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
