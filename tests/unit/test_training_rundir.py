"""A run never destroys another: used out_dir refused, --overwrite clears, --resume must fit the checkpoint."""

from __future__ import annotations

import hashlib
import json

import pytest

from ledom_reason.cli import main
from ledom_reason.paths import data_dir
from ledom_reason.training.config import FinetuneConfig, PretrainConfig, TokenizerConfig
from ledom_reason.training.finetune import run_finetune
from ledom_reason.training.pretrain import run_pretrain
from ledom_reason.training.tokenizer import train_tokenizer

CORPUS = str(data_dir() / "corpus" / "tinyshakespeare.txt")


@pytest.fixture(scope="module")
def tok_dir(tiny_tokenizer_dir):
    return tiny_tokenizer_dir


def _cfg(tok_dir, out, **kw):
    base = dict(inputs=[CORPUS], tokenizer=str(tok_dir), out_dir=str(out), hidden_size=32, num_layers=1, num_heads=2,
                num_kv_heads=1, block_size=32, micro_batch_size=2, max_steps=4, lr=3e-3, warmup_steps=1, log_every=1,
                save_every=2, max_docs_per_input=60, data_cache_dir=str(out.parent / "cache"))
    base.update(kw)
    return PretrainConfig(**base)


def _digest(folder):
    """Every file of a folder with the hash of its bytes (what a refused run must leave untouched)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _steps(out):
    return [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tok_dir):
    """A finished 4-step run with checkpoints at steps 2 and 4 (the final one)."""
    out = tmp_path_factory.mktemp("runs") / "done"
    run_pretrain(_cfg(tok_dir, out))
    return out


def test_a_second_run_into_a_used_out_dir_is_refused_and_changes_nothing(finished, tok_dir):
    before = _digest(finished)
    with pytest.raises(ValueError, match=r"out_dir .*done already holds a training run: pass --overwrite to replace "
                                         r"it or --resume to continue it"):
        run_pretrain(_cfg(tok_dir, finished, max_steps=2))
    assert _digest(finished) == before
    assert _steps(finished) == [1, 2, 3, 4]
    assert sorted(p.name for p in (finished / "checkpoints").iterdir()) == ["step_00000002", "step_00000004"]


def test_resume_with_max_steps_not_above_the_checkpoint_is_refused(finished, tok_dir):
    before = _digest(finished)
    with pytest.raises(ValueError, match=r"cannot resume from .*step_00000004: `max_steps` \(2\) must be above the "
                                         r"checkpoint's step \(4\)"):
        run_pretrain(_cfg(tok_dir, finished, max_steps=2, resume="latest"))
    with pytest.raises(ValueError, match=r"`max_steps` \(4\) must be above"):  # the run is already complete
        run_pretrain(_cfg(tok_dir, finished, resume="latest"))
    assert _digest(finished) == before


@pytest.mark.parametrize(("change", "named"), [
    (dict(hidden_size=64), "`hidden_size` is 64 here but 32 in the checkpoint"),
    (dict(inputs=[CORPUS, f"{CORPUS}:2"]), "`inputs` is"),
    (dict(block_size=16), "`block_size` is 16 here but 32"),
    (dict(lr=1e-3), "`lr` is 0.001 here but 0.003"),
    (dict(micro_batch_size=4), "`micro_batch_size` is 4 here but 2"),
    (dict(direction="forward"), "`direction` is 'forward' here but 'reverse'"),
])
def test_resume_with_another_model_data_or_optimiser_is_refused(finished, tok_dir, change, named):
    before = _digest(finished)
    with pytest.raises(ValueError, match=r"cannot resume from .*step_00000004: ") as e:
        run_pretrain(_cfg(tok_dir, finished, max_steps=6, resume="latest", **change))
    assert named in str(e.value) and "\n" not in str(e.value)
    assert _digest(finished) == before


def test_resume_extends_a_finished_run_in_one_log(tmp_path, tok_dir):
    out = tmp_path / "ext"
    base = run_pretrain(_cfg(tok_dir, out))["losses"]
    # run-control fields may change on resume: how often to log and save, the device, the loss kernel
    res = run_pretrain(_cfg(tok_dir, out, max_steps=6, resume="latest", log_every=2, loss_impl="full",
                            device="cpu"))
    assert sorted(res["losses"]) == [5, 6]  # continued from the final checkpoint (step 4)
    assert _steps(out) == [1, 2, 3, 4, 6]  # steps 1-4 from the first command, one row per step, no repeats
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows[:4]] == [base[s] for s in range(1, 5)]
    assert json.loads((out / "train_config.json").read_text())["max_steps"] == 6


def test_overwrite_replaces_the_old_run(tmp_path, tok_dir):
    out = tmp_path / "ow"
    run_pretrain(_cfg(tok_dir, out, max_steps=4))
    old_model = (out / "model.safetensors").read_bytes()
    run_pretrain(_cfg(tok_dir, out, max_steps=2, seed=1, overwrite=True))
    assert _steps(out) == [1, 2]  # a fresh log
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002"]  # the old ones are gone
    assert (out / "model.safetensors").read_bytes() != old_model
    assert json.loads((out / "train_config.json").read_text())["max_steps"] == 2


def test_overwrite_refuses_a_folder_it_did_not_write(tmp_path, tok_dir):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"--overwrite refused: .*mine is not empty and has no train_config\.json"):
        run_pretrain(_cfg(tok_dir, out, overwrite=True))
    assert (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_resume_needs_a_checkpoint_in_a_used_folder(tmp_path, tok_dir):
    out = tmp_path / "nockpt"
    run_pretrain(_cfg(tok_dir, out, max_steps=2, save_every=0))
    with pytest.raises(ValueError, match=r"--resume: .*nockpt/checkpoints holds no checkpoint to resume from"):
        run_pretrain(_cfg(tok_dir, out, max_steps=3, save_every=0, resume="latest"))
    # an empty (or missing) out_dir with --resume starts a new run: the same command can restart a preempted job
    res = run_pretrain(_cfg(tok_dir, tmp_path / "fresh", max_steps=2, resume="latest"))
    assert sorted(res["losses"]) == [1, 2]


def test_resume_from_a_checkpoint_of_another_run_into_a_used_folder_is_refused(finished, tmp_path, tok_dir):
    other = tmp_path / "other"
    run_pretrain(_cfg(tok_dir, other, max_steps=2, save_every=0))
    before = _digest(other)
    ckpt = finished / "checkpoints" / "step_00000002"
    with pytest.raises(ValueError, match=r"out_dir .*other already holds another run"):
        run_pretrain(_cfg(tok_dir, other, max_steps=4, resume=str(ckpt)))
    assert _digest(other) == before


def test_cli_refusal_is_one_line(finished, tok_dir, capsys):
    rc = main(["train", "pretrain", "--inputs", CORPUS, "--tokenizer", str(tok_dir), "--out_dir", str(finished),
               "--max_steps", "5"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == (f"ledom-reason train: error: out_dir {finished} already holds a training run: pass --overwrite "
                   "to replace it or --resume to continue it, or choose another out_dir\n")


def test_finetune_refuses_a_used_out_dir_and_resumes_exactly(tmp_path, tiny_model_dir):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"question": f"What is {a} plus {a}?", "answer": f"{a}+{a}={2 * a}\n#### "
                                         f"{2 * a}"}) + "\n" for a in range(6)))

    def cfg(out, **kw):
        base = dict(model=str(tiny_model_dir), inputs=[str(pairs)], out_dir=str(out), micro_batch_size=2,
                    max_steps=6, lr=3e-3, warmup_steps=1, log_every=1, save_every=2, lora_dropout=0.0)
        return FinetuneConfig(**{**base, **kw})

    full = run_finetune(cfg(tmp_path / "full"))["losses"]
    model = (tmp_path / "full" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="already holds a training run"):
        run_finetune(cfg(tmp_path / "full", max_steps=2))
    assert (tmp_path / "full" / "model.safetensors").read_bytes() == model  # the finished model is intact
    killed = run_finetune(cfg(tmp_path / "k", stop_after=3))
    assert killed["stopped_early"]
    with pytest.raises(ValueError, match=r"`model` is .* here but .* in the checkpoint"):
        run_finetune(cfg(tmp_path / "k", resume="latest", model=str(tmp_path / "full")))
    resumed = run_finetune(cfg(tmp_path / "k", resume="latest"))["losses"]
    assert sorted(resumed) == [3, 4, 5, 6]  # from the step-2 checkpoint
    assert [resumed[s] for s in (3, 4, 5, 6)] == pytest.approx([full[s] for s in (3, 4, 5, 6)], rel=1e-5)
    assert _steps(tmp_path / "k") == [1, 2, 3, 4, 5, 6]


def test_tokenizer_refuses_to_replace_a_tokenizer(tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("the quick brown fox jumps over the lazy dog\n\n" * 20)
    out = tmp_path / "tok"
    train_tokenizer(TokenizerConfig(inputs=[str(doc)], out_dir=str(out), vocab_size=300))
    before = _digest(out)
    with pytest.raises(ValueError, match=r"out_dir .*tok already holds a tokenizer: pass --overwrite to replace it, "
                                         r"or choose another out_dir"):
        train_tokenizer(TokenizerConfig(inputs=[str(doc)], out_dir=str(out), vocab_size=280))
    assert _digest(out) == before
    train_tokenizer(TokenizerConfig(inputs=[str(doc)], out_dir=str(out), vocab_size=280, overwrite=True))
    assert json.loads((out / "train_config.json").read_text())["vocab_size"] == 280
    assert _digest(out) != before
