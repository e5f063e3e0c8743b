"""``ledom-reason train {tokenizer,pretrain,finetune}``: each takes ``--config recipe.yaml`` plus overrides.

Every config field is also an option (``--max_steps 50``, ``--max-steps=50``, ``--direction forward``);
options override the recipe. Under ``torchrun`` the same command runs data-parallel.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import typing
from typing import Any

_COMMANDS = {
    "tokenizer": ("TokenizerConfig", "train a byte-level BPE tokenizer (BOS/EOS/PAD) on text/JSONL files"),
    "pretrain": ("PretrainConfig", "pretrain a reverse (or --direction forward) LM from scratch"),
    "finetune": ("FinetuneConfig", "fine-tune a reverse model on (question, solution) pairs (loss on the question)"),
}


def add_config_args(p: argparse.ArgumentParser, cls: type) -> None:
    """One option per dataclass field (default suppressed, so only given options override)."""
    hints = typing.get_type_hints(cls)
    g = p.add_argument_group("config fields (override the recipe)")
    for f in dataclasses.fields(cls):
        flags = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        kw: dict[str, Any] = {"dest": f"cfg__{f.name}", "default": argparse.SUPPRESS,
                              "help": f.metadata.get("help", ""), "metavar": f.name.upper()}
        tp = hints[f.name]
        if tp is bool:
            kw.update(nargs="?", const="true", metavar="BOOL")
        elif f.name == "resume":
            kw.update(nargs="?", const="latest", metavar="latest|DIR")
        elif typing.get_origin(tp) is list:
            kw.update(nargs="+", metavar="VALUE")
        g.add_argument(*flags, **kw)


def collect_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k.removeprefix("cfg__"): v for k, v in vars(args).items() if k.startswith("cfg__")}


def register(sub: argparse._SubParsersAction) -> None:
    from ledom_reason.training import config as cfgmod

    p = sub.add_parser("train", help="train a tokenizer, pretrain or fine-tune a reverse (or forward) model",
                       description="Training commands; run `ledom-reason train COMMAND --help` for the options.")
    tsub = p.add_subparsers(dest="train_command", metavar="COMMAND")
    for name, (cls_name, help_) in _COMMANDS.items():
        cls = getattr(cfgmod, cls_name)
        sp = tsub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--config", help="YAML recipe (see recipes/); options below override it")
        add_config_args(sp, cls)
        sp.set_defaults(func=run, _train_cls=cls_name)
    p.set_defaults(func=lambda _args: p.print_help() or 2)


def run(args: argparse.Namespace) -> int:
    from ledom_reason.training import config as cfgmod

    logging.getLogger("ledom_reason.training").setLevel(logging.INFO)
    cls = getattr(cfgmod, args._train_cls)
    cfg = cfgmod.load_config(cls, args.config, values=collect_overrides(args))
    if args.train_command == "tokenizer":
        from ledom_reason.training.tokenizer import train_tokenizer

        print(f"tokenizer saved to {train_tokenizer(cfg)}")
        return 0
    if args.train_command == "pretrain":
        from ledom_reason.training.pretrain import pretrain

        out = pretrain(cfg)
    else:
        from ledom_reason.training.finetune import finetune

        out = finetune(cfg)
    print(f"model saved to {out}")
    return 0
