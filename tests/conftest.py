"""Shared fixtures: a tokenizer trained locally and tiny random-init models (no network)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--runslow") or os.environ.get("LEDOM_RUN_SLOW") == "1"
    skip_slow = pytest.mark.skip(reason="slow: use --runslow or LEDOM_RUN_SLOW=1")
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from ledom_reason.testing import corpus_texts, train_tiny_tokenizer

    return train_tiny_tokenizer(corpus_texts(max_chars=200_000), vocab_size=384)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    from ledom_reason.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny_rev"), tiny_tokenizer, arch="qwen2", seed=0)


@pytest.fixture(scope="session")
def tiny_forward_dir(tmp_path_factory, tiny_tokenizer):
    from ledom_reason.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny_fwd"), tiny_tokenizer, arch="qwen2", seed=1)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, tiny_tokenizer):
    from ledom_reason.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny_llama"), tiny_tokenizer, arch="llama", seed=2)


@pytest.fixture(scope="session")
def scorer(tiny_model_dir):
    from ledom_reason import ReverseScorer

    return ReverseScorer.from_pretrained(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def scorer_fwd(tiny_model_dir, tiny_forward_dir):
    from ledom_reason import ReverseScorer

    return ReverseScorer.from_pretrained(tiny_model_dir, device="cpu", forward_model=tiny_forward_dir)


@pytest.fixture(scope="session")
def bos_eos_tokenizer(tiny_tokenizer):
    """The tiny tokenizer made to add BOS and EOS by itself (``<|bos|> $A <|eos|>``, the Llama/ByT5 case the
    ``"tokenizer"`` layout is about)."""
    from ledom_reason.testing import plain_ids, with_bos_eos

    tok = with_bos_eos(tiny_tokenizer)
    text = "What is 7 times 8?"
    assert tok(text)["input_ids"] == [tok.bos_token_id, *plain_ids(tok, text), tok.eos_token_id]
    return tok


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory, tiny_tokenizer):
    """The tiny tokenizer saved to a folder (what training configs point `tokenizer` at)."""
    d = tmp_path_factory.mktemp("tok")
    tiny_tokenizer.save_pretrained(d)
    return d
