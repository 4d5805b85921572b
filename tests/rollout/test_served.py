"""The served teacher's client against a stand-in OpenAI-compatible server (the protocol: what each row
sends, which replica draws it, what comes back); `tests/rollout/test_vllm.py` runs it against a real `vllm`
server in `nox -s vllm`."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from brts.rollout.base import Request, SamplingSettings
from brts.rollout.served import ServedGenerator, TeacherServerError, response_token_ids
from brts.spec.experiment import RolloutSpec

EOS = 2
SETTINGS = SamplingSettings(n=1, temperature=0.8, top_p=0.9, max_new_tokens=6, seed=0)


class _Tokenizer:
    eos_token_id = EOS

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return " ".join(str(i) for i in ids if not (skip_special_tokens and i == EOS))


def _tokens(prompt: list[int], seed: int, max_tokens: int) -> list[int]:
    """A deterministic 'sample': a function of prompt and seed, ending in EOS when short."""
    digest = hashlib.sha256(json.dumps([prompt, seed]).encode()).digest()
    length = 1 + digest[0] % (max_tokens + 2)
    ids = [10 + b % 50 for b in digest[1 : 1 + min(length, max_tokens)]]
    return ids[: max_tokens - 1] + [EOS] if length <= max_tokens else ids


def _server(model: str = "teacher", token_ids_field: bool = True, version: str = "0.32.0"):
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def _send(self, payload: Any, code: int = 200) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/v1/models":
                self._send({"data": [{"id": model}]})
            elif self.path == "/version":
                self._send({"version": version})
            else:
                self._send({"error": "no"}, 404)

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(body)
            if body["model"] != model:
                self._send({"error": {"message": f"model {body['model']} does not exist"}}, 404)
                return
            ids = _tokens(body["prompt"], body["seed"], body["max_tokens"])
            choice: dict[str, Any] = {"text": "", "finish_reason": "stop" if ids[-1] == EOS else "length"}
            if token_ids_field:
                choice["token_ids"] = ids
            else:
                choice["logprobs"] = {"tokens": [f"token_id:{i}" for i in ids]}
            self._send({"choices": [choice]})

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}", bodies


@pytest.fixture
def servers() -> Iterator[list[tuple[str, list[dict[str, Any]]]]]:
    started = [_server(), _server()]
    yield [(url, bodies) for _, url, bodies in started]
    for httpd, _, _ in started:
        httpd.shutdown()


REQUESTS = [Request((1, 5, 7), seed) for seed in (11, 12, 13, 14, 15)]


def test_each_row_is_one_seeded_request_sent_as_token_ids_and_read_back_as_token_ids(servers):
    (url, bodies), _ = servers
    generator = ServedGenerator([url], _Tokenizer())
    out = generator.sample(REQUESTS, SETTINGS)
    assert [list(c.token_ids) for c in out] == [_tokens([1, 5, 7], r.seed, 6) for r in REQUESTS]
    assert all(c.finish_reason == ("stop" if c.token_ids[-1] == EOS else "length") for c in out)
    assert out[0].text == _Tokenizer().decode(list(out[0].token_ids))
    body = next(b for b in bodies if b["seed"] == 11)
    assert {k: body[k] for k in ("model", "prompt", "n", "max_tokens", "temperature", "top_p", "stop_token_ids")} == {
        "model": "teacher", "prompt": [1, 5, 7], "n": 1, "max_tokens": 6, "temperature": 0.8, "top_p": 0.9,
        "stop_token_ids": [EOS]}
    greedy = generator.payload(REQUESTS[0], SamplingSettings(temperature=0.0))
    assert greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0


def test_rows_go_to_the_replicas_in_turn_and_a_row_is_the_same_alone_or_in_a_batch(servers):
    (one, first), (two, second) = servers
    generator = ServedGenerator([one, two], _Tokenizer())
    batch = generator.sample(REQUESTS, SETTINGS)
    assert sorted(b["seed"] for b in first) == [11, 13, 15] and sorted(b["seed"] for b in second) == [12, 14]
    assert generator.sample(REQUESTS[3:4], SETTINGS) == batch[3:4]


def test_the_sampler_names_model_version_and_replicas_so_pool_keys_never_mix(servers):
    (one, _), (two, _) = servers
    assert ServedGenerator([one], _Tokenizer()).sampler == "served:teacher:vllm-0.32.0:1"
    assert ServedGenerator([one, two], _Tokenizer()).sampler == "served:teacher:vllm-0.32.0:2"


def test_older_servers_give_token_ids_through_log_prob_tokens():
    httpd, url, _ = _server(token_ids_field=False)
    try:
        out = ServedGenerator([url], _Tokenizer()).sample(REQUESTS[:2], SETTINGS)
        assert [list(c.token_ids) for c in out] == [_tokens([1, 5, 7], r.seed, 6) for r in REQUESTS[:2]]
    finally:
        httpd.shutdown()
    with pytest.raises(TeacherServerError, match="no token ids"):
        response_token_ids({"text": "42", "logprobs": {"tokens": ["4", "2"]}})


def test_what_cannot_work_is_one_line_naming_the_server():
    httpd, url, _ = _server(model="other")
    try:
        _, good, _ = started = _server(model="teacher")
        with pytest.raises(TeacherServerError, match="different models"):
            ServedGenerator([good, url], _Tokenizer())
        started[0].shutdown()
    finally:
        httpd.shutdown()
    with pytest.raises(TeacherServerError, match=r"http://127\.0\.0\.1:9 cannot be reached") as caught:
        ServedGenerator(["http://127.0.0.1:9"], _Tokenizer())
    assert "\n" not in str(caught.value)
    with pytest.raises(TeacherServerError, match="empty"):
        ServedGenerator([], _Tokenizer())


def test_a_spec_names_servers_by_url_and_only_a_served_teacher_changes_run_ids():
    from brts.runs.plan import plan, run_id
    from brts.spec import load_spec

    with pytest.raises(ValueError, match="teacher_server"):
        RolloutSpec(teacher_server=["localhost:8000"])
    local = plan(load_spec("smoke"))[0].config
    assert "teacher_server" not in local.results_dump()["rollout"]
    assert run_id(local) == plan(load_spec("smoke", ["rollout.teacher_server=[]"]))[0].run_id
    served = plan(load_spec("smoke", ["rollout.teacher_server=[http://gpu-1:8000]"]))[0].config
    assert served.results_dump()["rollout"]["teacher_server"] == ["http://gpu-1:8000"]
    assert run_id(served) != run_id(local)
