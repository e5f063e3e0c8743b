"""``ledom-reason train {tokenizer,pretrain,finetune}``: each takes ``--config recipe.yaml`` plus options.

Every config field is also an option (``--max_steps 50``, ``--max-steps=50``, ``--inputs a.txt b.txt``,
``--direction forward``); options override the recipe, prefixes of options are refused. A used
``out_dir`` is refused unless ``--overwrite`` (delete the old run) or ``--resume`` (continue it).
Under ``torchrun`` the same command runs data-parallel.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

_COMMANDS = {
    "tokenizer": ("TokenizerConfig", "train a byte-level BPE tokenizer (BOS/EOS/PAD) on text/JSONL files"),
    "pretrain": ("PretrainConfig", "pretrain a reverse (or --direction forward) LM from scratch"),
    "finetune": ("FinetuneConfig", "fine-tune a reverse model on (question, solution) pairs (loss on the question)"),
}


class _LazyConfigParser(argparse.ArgumentParser):
    """Stands in for the command's ``RecipeParser`` until the command is parsed.

    The real parser is built from the config dataclass by transformers' ``HfArgumentParser``, and
    importing transformers takes about a second: ``ledom-reason --help`` and the other commands
    should not pay for it.
    """

    def __init__(self, *, config_cls: str = "", **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(**kwargs)
        self._config_cls = config_cls

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        from ledom_reason.training import config as cfgmod
        from ledom_reason.training.parser import RecipeParser

        real = RecipeParser(getattr(cfgmod, self._config_cls), prog=self.prog, description=self.description)
        real.set_defaults(func=run, _train_cls=self._config_cls)
        return real.parse_known_args(args, namespace)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a tokenizer, pretrain or fine-tune a reverse (or forward) model",
                       description="Training commands; run `ledom-reason train COMMAND --help` for the options.")
    tsub = p.add_subparsers(dest="train_command", metavar="COMMAND", parser_class=_LazyConfigParser)
    for name, (cls_name, help_) in _COMMANDS.items():
        tsub.add_parser(name, help=help_, description=help_, config_cls=cls_name)
    p.set_defaults(func=lambda _args: p.print_help() or 2)


def run(args: argparse.Namespace) -> int:
    import logging

    from ledom_reason.training import config as cfgmod
    from ledom_reason.training.parser import config_from_namespace

    logging.getLogger("ledom_reason.training").setLevel(logging.INFO)
    cfg = config_from_namespace(getattr(cfgmod, args._train_cls), args)
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
