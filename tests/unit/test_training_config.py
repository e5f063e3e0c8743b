"""Training configs through HfArgumentParser: recipes, CLI-over-recipe precedence, errors, no prefixes."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from ledom_reason.cli import main, make_parser
from ledom_reason.training.config import FinetuneConfig, PretrainConfig, TokenizerConfig
from ledom_reason.training.parser import RecipeParser, load_config

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ["--inputs", "a.txt", "--tokenizer", "tok", "--out_dir", "o"]


def _recipe_cls(path: Path) -> type:
    name = path.stem
    return TokenizerConfig if "tokenizer" in name else FinetuneConfig if "finetune" in name else PretrainConfig


@pytest.mark.parametrize("path", sorted(ROOT.glob("recipes/**/*.yaml")), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_recipe_parses_to_its_values(path):
    cls = _recipe_cls(path)
    raw = yaml.safe_load(path.read_text())
    # ledom-tiny recipes leave inputs/tokenizer/out_dir/model to benchmarks/replicate.py
    fill = {"inputs": ["x.txt"], "out_dir": "o", **({"tokenizer": "t"} if cls is PretrainConfig else {}),
            **({"model": "m"} if cls is FinetuneConfig else {})}
    args = [tok for k, v in fill.items() if k not in raw for tok in (f"--{k}", *(v if isinstance(v, list) else [v]))]
    cfg = load_config(cls, path, args)
    for key, value in raw.items():
        assert getattr(cfg, key) == value, key
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in set(fields) - set(raw) - set(fill):  # untouched fields keep the dataclass default
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert getattr(cfg, name) == default, name


def test_command_line_beats_recipe_beats_default(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("inputs: [a.txt, 'b.txt:2']\ntokenizer: tok\nout_dir: o\nlr: 1.0e-3\nmax_steps: 50\n")
    cfg = load_config(PretrainConfig, recipe, ["--lr", "2e-3", "--direction=forward"])
    assert (cfg.lr, cfg.max_steps, cfg.direction, cfg.inputs) == (2e-3, 50, "forward", ["a.txt", "b.txt:2"])
    assert cfg.warmup_steps == PretrainConfig.__dataclass_fields__["warmup_steps"].default
    cfg = load_config(PretrainConfig, recipe, ["--inputs", "c.txt", "d.txt:0.5"])  # a list option replaces the list
    assert cfg.inputs == ["c.txt", "d.txt:0.5"]


def test_option_spellings():
    cfg = load_config(PretrainConfig, args=[*REQUIRED, "--max-steps=7", "--doc_mask", "false", "--resume",
                                            "--tie_word_embeddings"])
    assert (cfg.max_steps, cfg.doc_mask, cfg.resume, cfg.tie_word_embeddings) == (7, False, "latest", True)
    cfg = load_config(PretrainConfig, args=[*REQUIRED, "--no_doc_mask", "--resume", "ckpt/step_1"])
    assert (cfg.doc_mask, cfg.resume) == (False, "ckpt/step_1")
    cfg = load_config(FinetuneConfig, args=["--model", "m", "--inputs", "a", "--out_dir", "o", "--lora_merge", "false"])
    assert cfg.lora_merge is False and cfg.lr == 5e-5  # FinetuneConfig's own default


def test_yaml_values_are_typed_like_options(tmp_path):
    recipe = tmp_path / "r.yaml"
    # PyYAML reads `1e-3` (no dot) as a string and `false` as a bool: both must still land right
    recipe.write_text("inputs: corpus.txt\ntokenizer: tok\nout_dir: o\nlr: 1e-3\ncompile: false\nrope_theta: 500\n")
    cfg = load_config(PretrainConfig, recipe)
    assert (cfg.inputs, cfg.lr, cfg.compile, cfg.rope_theta) == (["corpus.txt"], 1e-3, "false", 500.0)
    assert isinstance(cfg.rope_theta, float)


@pytest.mark.parametrize(("body", "match"), [
    ("max_step: 5\n", r"r\.yaml: unknown key `max_step`: not a PretrainConfig field \(did you mean `max_steps`\?\)"),
    ("max_steps: 1.5\n", r"`max_steps` must be an integer, got 1\.5"),
    ("direction: sideways\n", r"`direction` must be one of \['reverse', 'forward'\], got 'sideways'"),
    ("max_steps: 0\n", r"`max_steps` must be >= 1, got 0"),
    ("lr: fast\n", r"r\.yaml: `lr`: invalid value 'fast'"),
    ("- a\n- b\n", r"r\.yaml: expected a mapping"),
])
def test_bad_recipes_name_the_key_and_file(tmp_path, body, match):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(body)
    with pytest.raises(ValueError, match=match):
        load_config(PretrainConfig, recipe, REQUIRED)


def test_bad_options():
    with pytest.raises(ValueError, match=r"unrecognized arguments: --max-step 5 \(did you mean --max-steps\?\)"):
        load_config(PretrainConfig, args=[*REQUIRED, "--max-step", "5"])  # a prefix is not an option
    with pytest.raises(ValueError, match="invalid choice: 'sideways'"):
        load_config(PretrainConfig, args=[*REQUIRED, "--direction", "sideways"])
    with pytest.raises(ValueError, match="`block_size` must be >= 2"):
        load_config(PretrainConfig, args=[*REQUIRED, "--block_size", "1"])
    with pytest.raises(ValueError, match="`overwrite` and `resume` exclude each other"):
        load_config(PretrainConfig, args=[*REQUIRED, "--overwrite", "--resume"])
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(PretrainConfig, "missing.yaml")


def test_cli_refuses_an_option_prefix(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "pretrain", "--config", str(ROOT / "recipes/tiny_pretrain.yaml"), "--max-step", "5"])
    assert e.value.code == 2
    assert "ledom-reason train pretrain: error: unrecognized arguments: --max-step 5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["score", "--mod", "x", "--input", "in.jsonl"])  # prefix of --model
    assert e.value.code == 2
    assert "unrecognized arguments: --mod x" in capsys.readouterr().err


def test_cli_unknown_recipe_key_names_it(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("inputs: [a.txt]\nmax_step: 5\n")
    with pytest.raises(SystemExit) as e:
        main(["train", "pretrain", "--config", str(recipe)])
    assert e.value.code == 2
    assert f"{recipe}: unknown key `max_step`" in capsys.readouterr().err


def _all_parsers(p):
    yield p
    for a in p._actions:
        for sub in (getattr(a, "choices", None) or {}).values() if hasattr(a, "_name_parser_map") else []:
            yield from _all_parsers(sub)


def test_every_cli_parser_refuses_prefixes():
    parsers = list(_all_parsers(make_parser()))
    assert len(parsers) >= 12  # the top level, every command, and train's three sub-commands
    assert all(p.allow_abbrev is False for p in parsers), [p.prog for p in parsers if p.allow_abbrev]
    for cls in (PretrainConfig, FinetuneConfig, TokenizerConfig):  # the parsers train's sub-commands build
        assert RecipeParser(cls).allow_abbrev is False


def _argument_parser_calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name == "ArgumentParser":
                yield node


def test_every_script_parser_refuses_prefixes():
    files = [p for d in ("training", "benchmarks", "examples", "ledom_reason/cli") for p in (ROOT / d).rglob("*.py")]
    calls = [(f, c) for f in files for c in _argument_parser_calls(f)]
    assert len(calls) >= 15
    missing = [f"{f.relative_to(ROOT)}:{c.lineno}" for f, c in calls
               if not any(k.arg == "allow_abbrev" and isinstance(k.value, ast.Constant) and k.value.value is False
                          for k in c.keywords)]
    assert missing == []


@pytest.mark.parametrize(("module", "args"), [("pretrain", REQUIRED), ("finetune", ["--model", "m", "--inputs", "a"])])
def test_python_m_entry_points_refuse_a_prefix(module, args, capsys):
    import importlib

    entry = importlib.import_module(f"ledom_reason.training.{module}")
    with pytest.raises(SystemExit) as e:
        entry.main([*args, "--max-step", "5"])
    assert e.value.code == 2
    assert "unrecognized arguments: --max-step 5" in capsys.readouterr().err
