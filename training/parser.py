"""Command-line parsing of the training configs: transformers' ``HfArgumentParser`` plus ``--config``.

:class:`RecipeParser` turns one config dataclass into options (``--max_steps 50``,
``--max-steps=50``, ``--inputs a.txt b.txt:2``, ``--doc_mask false`` / ``--no_doc_mask``,
``--resume`` = ``--resume latest``) the way TRL's parser does, and reads ``--config recipe.yaml``
first: the recipe's values become the parser's defaults, so an option given on the command line
wins over the recipe, which wins over the dataclass default. A recipe key that is not a field is
an error naming the key and the file; prefixes of options are refused (``allow_abbrev=False``).

Example:
    >>> from ledom_reason.training.config import PretrainConfig
    >>> from ledom_reason.training.parser import load_config
    >>> cfg = load_config(PretrainConfig, args=["--inputs", "a.txt", "--tokenizer", "tok", "--out_dir", "o",
    ...                                         "--max-steps", "7"])
    >>> cfg.max_steps, cfg.inputs
    (7, ['a.txt'])
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

from transformers import HfArgumentParser

C = TypeVar("C")


def read_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw key/value mapping of a YAML (or ``.json``) recipe.

    Raises:
        FileNotFoundError: no such file. ValueError: the file is not a mapping (message names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json":
        values = json.loads(text)
    else:
        import yaml

        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{p}: expected a mapping of config keys, got {type(values).__name__}")
    return values


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


class RecipeParser(HfArgumentParser):
    """``HfArgumentParser`` for one config dataclass, with ``--config YAML`` read before the options.

    Args:
        config_cls: The config dataclass (``PretrainConfig``…).
        raise_errors: Raise ``ValueError`` instead of printing usage and exiting (for library use).
        **kwargs: ``argparse.ArgumentParser`` arguments (``prog``, ``description``…).
    """

    def __init__(self, config_cls: type, *, raise_errors: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("usage", "%(prog)s [--config YAML] [--FIELD VALUE ...]  (--help lists the fields)")
        super().__init__(cast(Any, config_cls), **kwargs)
        self.config_cls = config_cls
        self.raise_errors = raise_errors
        self.add_argument("--config", metavar="YAML", help="recipe (recipes/*.yaml); the options override its values")
        self._fields = {f.name: f for f in dataclasses.fields(config_cls)}
        self._by_dest: dict[str, argparse.Action] = {}
        for a in self._actions:  # the first action of a dest owns its type (`--no_x` comes second)
            self._by_dest.setdefault(a.dest, a)

    def error(self, message: str) -> NoReturn:
        if self.raise_errors:
            raise ValueError(message)
        super().error(message)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        """Apply the recipe named by ``--config`` as defaults, then parse; unknown options are an error."""
        argv = list(sys.argv[1:] if args is None else args)
        self.set_defaults(**{n: _field_default(f) for n, f in self._fields.items()})  # forget an earlier recipe
        pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        pre.add_argument("--config")
        path = pre.parse_known_args(argv)[0].config
        if path:
            try:
                self.set_defaults(**self.recipe_defaults(path))
            except (ValueError, FileNotFoundError) as e:
                self.error(str(e))
        ns, extra = super().parse_known_args(argv, namespace)
        if extra:
            self.error(self._unrecognized(extra))
        return ns, extra

    def recipe_defaults(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """The recipe's values, checked against the fields; strings converted by the option's type.

        Raises:
            ValueError: an unknown key or a value of the wrong type (the message names key and file).
        """
        out: dict[str, Any] = {}
        for key, value in read_recipe(path).items():
            if key not in self._fields:
                close = difflib.get_close_matches(str(key), self._fields, n=1)
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                raise ValueError(f"{path}: unknown key `{key}`: not a {self.config_cls.__name__} field{hint}")
            action = self._by_dest[key]
            if action.nargs == "+" and not isinstance(value, list):
                value = [value]  # `inputs: corpus.txt` means a one-file list
            try:
                if isinstance(value, str):
                    value = self._convert(action, value)
                elif isinstance(value, list):
                    value = [self._convert(action, v) if isinstance(v, str) else v for v in value]
            except (TypeError, ValueError, argparse.ArgumentTypeError):
                raise ValueError(f"{path}: `{key}`: invalid value {value!r}") from None
            out[key] = value
        return out

    @staticmethod
    def _convert(action: argparse.Action, value: str) -> Any:
        return action.type(value) if callable(action.type) and action.type is not str else value

    def _unrecognized(self, extra: list[str]) -> str:
        opts = [o for a in self._actions for o in a.option_strings]
        msg = f"unrecognized arguments: {' '.join(extra)}"
        for tok in extra:
            if tok.startswith("--"):
                close = difflib.get_close_matches(tok.split("=", 1)[0], opts, n=1)
                if close:
                    msg += f" (did you mean {close[0]}?)"
                break
        return msg

    def parse_config(self, args: Sequence[str] | None = None) -> Any:
        """Parse ``args`` (default ``sys.argv[1:]``) into the config; validation errors raise ``ValueError``."""
        return config_from_namespace(self.config_cls, self.parse_args(args))


def config_from_namespace(cls: type[C], ns: argparse.Namespace) -> C:
    """Build ``cls`` from the fields of a parsed namespace (``__post_init__`` validates)."""
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})  # type: ignore[arg-type]


def load_config(cls: type[C], path: str | os.PathLike[str] | None = None, args: Sequence[str] = ()) -> C:
    """Load ``cls`` from a YAML (or JSON) recipe with command-line style ``args`` on top.

    Example: ``load_config(PretrainConfig, "recipes/tiny_pretrain.yaml", ["--max_steps", "5"])``.

    Raises:
        ValueError: unknown keys or options, bad values, or a config that fails validation.
        FileNotFoundError: ``path`` does not exist.
    """
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    argv = (["--config", str(path)] if path is not None else []) + list(args)
    cfg: C = RecipeParser(cls, raise_errors=True).parse_config(argv)
    return cfg


def run_main(parser: RecipeParser, run: Callable[[Any], Path], argv: Sequence[str] | None = None) -> int:
    """The ``python -m ledom_reason.training.*`` entry points: parse, run, print where the model went.

    A config that fails validation is a usage error (exit 2); a refused ``out_dir`` or ``--resume``
    prints one line (exit 2) instead of a traceback.
    """
    import logging

    try:
        cfg = parser.parse_config(argv)
    except ValueError as e:
        parser.error(str(e))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        out = run(cfg)
    except (ValueError, FileNotFoundError) as e:
        sys.stderr.write(f"{parser.prog}: error: {e}\n")
        return 2
    if os.environ.get("RANK", "0") == "0":
        sys.stdout.write(f"model saved to {out}\n")
    return 0
