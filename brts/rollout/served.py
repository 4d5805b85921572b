"""Teacher samples from a teacher behind OpenAI-compatible vLLM servers (`rollout.teacher_server`).

Keyed like every teacher generator: each row is its own `/v1/completions` request with the row's seed and
`n = 1`, so a row's sample depends on its prompt, seed and settings and on the server, not on the other rows
(vLLM seeds each request's sampler). Rows go to the replicas in turn (row k to replica k mod R), many at once.
A server's sampler is not brts's keyed loop, and two vLLM builds need not draw alike, so the `sampler` name
(part of every pool key) carries the served model, the server's vLLM version and the replica list: samples of
a server are never mixed with local ones, nor with another server's. Where replicas run different hardware or
builds, which replica drew a row can change it; serve identical replicas.

The prompt goes as token ids and the response comes back as token ids (vLLM's `return_token_ids`, or the
`token_id:N` form of `return_tokens_as_token_ids` on older servers), so nothing is re-tokenised.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from transformers import PreTrainedTokenizerBase

from brts.errors import UserError
from brts.rollout.base import Completion, FinishReason, Request, SamplingSettings

CONCURRENT_REQUESTS = 32  # rows in flight at once, over all replicas (the servers batch them)
TIMEOUT_S = 600.0


class TeacherServerError(UserError, RuntimeError):
    """A teacher server cannot be reached or answers something brts cannot use; the message names it."""


def _call(url: str, path: str, payload: dict[str, Any] | None = None, timeout: float = TIMEOUT_S) -> Any:
    """JSON from `url + path` (GET, or POST of `payload`); a one-line TeacherServerError otherwise."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the user's own URL)
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip().splitlines()
        raise TeacherServerError(f"teacher server {url}{path}: HTTP {exc.code} {detail[0][:300] if detail else ''}"
                                 ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TeacherServerError(f"teacher server {url} cannot be reached ({reason}); start it with `python -m "
                                 "vllm.entrypoints.openai.api_server --model TEACHER` or fix rollout.teacher_server"
                                 ) from exc
    except json.JSONDecodeError as exc:
        raise TeacherServerError(f"teacher server {url}{path} answered something that is not JSON") from exc


def served_model(url: str) -> str:
    """The one model a server serves (`/v1/models`)."""
    models = [m.get("id") for m in _call(url, "/v1/models", timeout=30).get("data", [])]
    if len(models) != 1 or not isinstance(models[0], str):
        raise TeacherServerError(f"teacher server {url} serves {models}; serve exactly one model, the teacher")
    return models[0]


def response_token_ids(choice: dict[str, Any]) -> list[int]:
    """The sampled token ids of one completion choice, from `token_ids` or from `token_id:N` log-prob tokens."""
    if isinstance(choice.get("token_ids"), list):
        return [int(t) for t in choice["token_ids"]]
    tokens = (choice.get("logprobs") or {}).get("tokens")
    if isinstance(tokens, list) and all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
        return [int(t.removeprefix("token_id:")) for t in tokens]
    raise TeacherServerError("the teacher server returned no token ids (a vLLM OpenAI server is needed: it returns "
                             "them with return_token_ids or return_tokens_as_token_ids)")


class ServedGenerator:
    """A `KeyedGenerator` over one or more replicas of a served teacher."""

    def __init__(self, urls: Sequence[str], tokenizer: PreTrainedTokenizerBase, *,
                 concurrency: int = CONCURRENT_REQUESTS) -> None:
        if not urls:
            raise TeacherServerError("rollout.teacher_server is empty")
        self.urls = [u.rstrip("/") for u in urls]
        models = {u: served_model(u) for u in self.urls}
        if len(set(models.values())) != 1:
            raise TeacherServerError(f"the teacher servers serve different models: {models}")
        self.model = next(iter(models.values()))
        versions = {str(_call(u, "/version", timeout=30).get("version", "?")) for u in self.urls}
        self.sampler = f"served:{self.model}:vllm-{'/'.join(sorted(versions))}:{len(self.urls)}"
        self.tokenizer = tokenizer
        self.eos = int(tokenizer.eos_token_id)
        self.concurrency = concurrency

    def payload(self, request: Request, settings: SamplingSettings) -> dict[str, Any]:
        """The `/v1/completions` body of one row."""
        greedy = settings.temperature <= 0
        return {
            "model": self.model, "prompt": list(request.prompt), "n": 1, "max_tokens": settings.max_new_tokens,
            "temperature": 0.0 if greedy else settings.temperature, "top_p": 1.0 if greedy else settings.top_p,
            "seed": request.seed, "stop_token_ids": [self.eos], "skip_special_tokens": True,
            "return_token_ids": True, "logprobs": 0, "return_tokens_as_token_ids": True,
        }

    def sample(self, requests: Sequence[Request], settings: SamplingSettings) -> list[Completion]:
        """One completion per request, in request order; row k drawn by replica k mod R."""
        if not requests:
            return []

        def one(k: int) -> Completion:
            answer = _call(self.urls[k % len(self.urls)], "/v1/completions", self.payload(requests[k], settings))
            return self._completion(answer["choices"][0])

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as workers:
            return list(workers.map(one, range(len(requests))))

    def _completion(self, choice: dict[str, Any]) -> Completion:
        ids = response_token_ids(choice)
        finish: FinishReason = "stop" if ids and ids[-1] == self.eos else "length"
        text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
        return Completion(token_ids=tuple(ids), text=text, finish_reason=finish)
