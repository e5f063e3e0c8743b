"""Issue 14, item 1, reproduced as the issue describes it: a byte-level BPE trained with `tokenizers`
(specials `<bos>`, `<eos>`, no pad) wrapped in `PreTrainedTokenizerFast`, a `Qwen2ForCausalLM` with
`vocab_size=len(tokenizer)`, both saved to one folder. transformers 5 reloads that folder as
`Qwen2Tokenizer`, which adds `<|endoftext|>` as pad token with id == vocab size — one past the
embedding table. Padding with it crashed the embedding lookup (IndexError; HTTP 500 from the server).

Found while fixing it: that `Qwen2Tokenizer` also splits digits one by one, unlike the saved
tokenizer — a silent wrong score. `from_pretrained(folder)` now loads the folder's tokenizer.json as
saved when the class transformers picks disagrees with it; the pad fix is exercised with the
`Qwen2Tokenizer` passed in explicitly.
"""

from __future__ import annotations

import pytest
import torch

from ledom_reason import ReverseScorer
from ledom_reason.types import InvalidPairError

PAIRS = [
    ("What is 7 times 8?", "7 * 8 = 56\n#### 56"),
    ("Natalia sold 48 clips in April and half as many in May. How many did she sell?",
     "In May she sold 48 / 2 = 24 clips, so 48 + 24 = 72 in total.\n#### 72"),
    ("Hi?", "Yes."),
    ("A farmer has 3 cows and buys 4 more. How many cows?", "3 + 4 = 7\n#### 7"),
]


@pytest.fixture(scope="module")
def issue_folder(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from ledom_reason.testing import corpus_texts

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus_texts(max_chars=60_000), trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<bos>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>")
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                         max_position_embeddings=256))
    folder = tmp_path_factory.mktemp("issue14_qwen2")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, tok


def reference(model, tok, question, candidate):
    """log P_rev(question | candidate) of one pair, written out: [BOS] + rev(c) + rev(q), full log-softmax."""
    q = tok(question, add_special_tokens=False)["input_ids"]
    c = tok(candidate, add_special_tokens=False)["input_ids"]
    prefix = [] if tok.bos_token_id is None else [tok.bos_token_id]
    ids = prefix + c[::-1] + q[::-1]
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
    start = len(prefix) + len(c)
    return sum(float(logp[t - 1, ids[t]]) for t in range(start, len(ids)))


@pytest.fixture(scope="module")
def reloaded(issue_folder):
    """The folder's tokenizer as `AutoTokenizer` reloads it (a `Qwen2Tokenizer` with transformers 5)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(issue_folder[0])


@pytest.fixture(scope="module")
def scorer(issue_folder, reloaded):
    """The scorer with the reloaded tokenizer passed in: pad `<|endoftext|>` one past the table."""
    return ReverseScorer.from_pretrained(issue_folder[0], tokenizer=reloaded, device="cpu", dtype=torch.float32,
                                         batch_tokens=64)


def test_issue_recipe_scores_the_tokens_the_model_was_built_with(issue_folder):
    """Exactly the issue's call: right scores, on the ids of the tokenizer the model was built with."""
    folder, built = issue_folder
    scorer = ReverseScorer.from_pretrained(folder, device="cpu", dtype=torch.float32, batch_tokens=64)
    for text in (t for p in PAIRS for t in p):
        assert scorer.tokenizer(text, add_special_tokens=False)["input_ids"] == built(text, add_special_tokens=False)["input_ids"]
    for (q, c), s in zip(PAIRS, scorer.score(PAIRS), strict=True):
        assert s.reverse_logprob == pytest.approx(reference(scorer.model, built, q, c), abs=1e-4)


def test_the_reload_quirks(issue_folder, reloaded):
    """What transformers 5 does to this folder (skipped where it does not): pad outside the table,
    other token ids for digits — and what `from_pretrained` makes of it."""
    from ledom_reason.scorers.checkpoint import load_tokenizer, tokenizer_json_mismatch

    folder, built = issue_folder
    rows = len(built)
    if reloaded.pad_token_id is None or reloaded.pad_token_id < rows:
        pytest.skip(f"this transformers reloads {type(reloaded).__name__} with pad {reloaded.pad_token_id}")
    assert len(reloaded) == rows + 1 and reloaded.pad_token_id == rows
    diff = tokenizer_json_mismatch(reloaded, folder)
    ours = load_tokenizer(folder)
    assert tokenizer_json_mismatch(ours, folder) is None and len(ours) == rows
    assert diff is not None  # digits: Qwen2Tokenizer splits "48" into "4", "8"; the saved tokenizer does not
    assert f"built {type(reloaded).__name__}, which splits text differently" in ours.ledom_reload_note


def test_pad_outside_the_table_scores_equal_reference(issue_folder, scorer):
    rows = len(issue_folder[1])
    if scorer.tokenizer.pad_token_id is None or scorer.tokenizer.pad_token_id < rows:
        pytest.skip("quirk absent with this transformers")
    assert 0 <= scorer.encoder.pad_id < rows
    got = scorer.score(PAIRS)  # mixed lengths, a small budget: several padded batches
    for (q, c), s in zip(PAIRS, got, strict=True):
        assert s.reverse_logprob == pytest.approx(reference(scorer.model, scorer.tokenizer, q, c), abs=1e-4)


def test_token_outside_the_table_is_a_clear_error(issue_folder, scorer):
    rows = len(issue_folder[1])
    if len(scorer.tokenizer) <= rows:
        pytest.skip("the tokenizer has no token outside the table here")
    outside = scorer.tokenizer.convert_ids_to_tokens(rows)
    with pytest.raises(InvalidPairError) as e:
        scorer.score([PAIRS[0], ("What is 2 + 2?", f"4 {outside}")])
    assert e.value.index == 1
    msg = str(e.value)
    assert f"len(tokenizer) = {rows + 1}" in msg and f"{rows} rows" in msg and "candidate" in msg


def test_server_scores_and_names_the_cause(issue_folder, scorer):
    from fastapi.testclient import TestClient

    from ledom_reason.server.app import create_app

    rows = len(issue_folder[1])
    body = {"pairs": [{"question": q, "candidate": c} for q, c in PAIRS]}
    with TestClient(create_app(scorer), raise_server_exceptions=False) as client:
        r = client.post("/v1/score", json=body)
        assert r.status_code == 200, r.text
        for (q, c), s in zip(PAIRS, r.json()["scores"], strict=True):
            assert s["reverse_logprob"] == pytest.approx(reference(scorer.model, scorer.tokenizer, q, c), abs=1e-4)
        if len(scorer.tokenizer) > rows:
            bad = {"pairs": [*body["pairs"], {"question": "<|endoftext|> 2 + 2?", "candidate": "4"}]}
            r = client.post("/v1/score", json=bad)
            assert r.status_code == 422
            err = r.json()["error"]
            assert err["type"] == "invalid_input" and err["pair_index"] == len(PAIRS)
            assert "question contains token id" in err["message"] and f"{rows} rows" in err["message"]
            assert err["message"].count("embedding table") == 1


def test_wrong_tokenizer_fails_at_load(issue_folder, tmp_path):
    """A base vocabulary larger than the table cannot be scored at all: one error at load, naming both sizes."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    folder, built = issue_folder
    rows = len(built)
    small = Qwen2ForCausalLM(Qwen2Config(vocab_size=rows - 50, hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    tok = AutoTokenizer.from_pretrained(folder)
    with pytest.raises(ValueError, match=rf"len\(tokenizer\) = {len(tok)} .*embedding table has {rows - 50} rows"):
        ReverseScorer(small, tok)
