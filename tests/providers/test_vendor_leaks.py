"""Over a real server: a vendor that echoes the Authorization it was sent (the stack's own Fireworks
key) never gets that key to the client, whatever it answers (issue 11, item 11). Each error case of
the shared vendor tests is asked by an unauthenticated client, natively and through /v1, streamed
where the case streams, and answered with the status of llama_core.providers.vendor_errors' table."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from providers.fakes import FakeVendor, Reply, sample
from providers.fakes.openai_cases import ECHO_CASES
from providers.fakes.stacks import running_stack
from rpc.server import running_server

from llama_core.config import RunConfig
from llama_core.stack import Stack
from llama_rpc.http import create_app

KEY = "fw-stack-secret-1"
UPSTREAM_KEY = "up-stack-secret-2"
CHAT = {"model": "Llama3.1-8B-Instruct", "messages": [{"role": "user", "content": "Capital of France?"}]}


@pytest.fixture(scope="module")
def fireworks() -> Iterator[tuple[FakeVendor, str]]:
    vendor = FakeVendor()
    with running_server(lambda: vendor) as vendor_url:
        config = RunConfig(name="fw", distribution_id="local-plus-fireworks-inference", providers={
            "inference": {"provider_id": "remote::fireworks", "url": vendor_url, "api_key": KEY}})  # fmt: skip
        with running_stack(config) as url:
            yield vendor, url


def ask(url: str, path: str, stream: bool) -> httpx.Response:
    return httpx.post(url + path, json={**CHAT, "stream": stream}, timeout=30)


def error_of(answer: httpx.Response) -> tuple[int, str]:
    """(status, message) of an error answer: the HTTP status, or a stream's last event's."""
    if answer.headers["content-type"].startswith("text/event-stream"):
        events = answer.text.strip().split("\n\n")
        if events[-1] == "data: [DONE]":  # /v1 ends every stream so, errors included
            events.pop()
        last = json.loads(events[-1].removeprefix("data: "))
        assert answer.status_code == 200
        return last["error"].get("status", last["error"].get("code")), last["error"]["message"]
    return answer.status_code, answer.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/inference/chat_completion", "/v1/chat/completions"], ids=["native", "openai"])
@pytest.mark.parametrize("name", list(ECHO_CASES))
def test_the_stacks_vendor_key_never_reaches_the_client(
    fireworks: tuple[FakeVendor, str], caplog: pytest.LogCaptureFixture, name: str, path: str
) -> None:
    vendor, url = fireworks
    replies, stream, _, status, message = ECHO_CASES[name]
    vendor.reset()
    vendor.echo_auth = True
    # The server's retries wait as Retry-After says: none here.
    vendor.then("/v1/chat/completions", *[Reply(**{**vars(r), "headers": {"Retry-After": "0"}}) for r in replies])
    with caplog.at_level(logging.WARNING):
        answer = ask(url, path, stream)
    assert error_of(answer) == (status, message.format(v="Fireworks"))
    assert KEY not in answer.text and KEY not in str(answer.headers)
    assert "WWW-Authenticate" not in answer.headers  # not a 401: the client's own key (none) is not at fault
    assert [r.headers["authorization"] for r in vendor.requests] == [f"Bearer {KEY}"] * len(replies)
    assert KEY not in caplog.text


def test_a_good_answer_still_passes(fireworks: tuple[FakeVendor, str]) -> None:
    vendor, url = fireworks
    vendor.reset()
    vendor.then("/v1/chat/completions", Reply(body=sample("fireworks/chat.json")))
    answer = ask(url, "/inference/chat_completion", False)
    assert (answer.status_code, answer.json()["completion_message"]["content"]) == (200, "The capital of France is Paris.")


def test_an_upstream_stacks_401_is_a_502_naming_it(tmp_path_factory: pytest.TempPathFactory) -> None:
    """remote -> a stack run with --api-key: without the key in our config its 401 is our fault toward it
    (502); with it, the request passes. The client's request carries no key at all."""
    vendor = FakeVendor({("POST", "/v1/chat/completions"): Reply(body=sample("fireworks/chat.json"))})
    with running_server(lambda: vendor) as vendor_url:
        fireworks = RunConfig(name="fw", distribution_id="local-plus-fireworks-inference", providers={
            "inference": {"provider_id": "remote::fireworks", "url": vendor_url, "api_key": KEY}})  # fmt: skip
        upstream = Stack.from_config(fireworks)
        with running_server(lambda: create_app(upstream, api_key=UPSTREAM_KEY), stack=upstream) as up_url:
            answers = []
            for api_key in (None, "wrong-key-3", UPSTREAM_KEY):
                remote = RunConfig(name="r", distribution_id="remote", providers={
                    "inference": {"provider_id": "remote", "url": up_url, **({"api_key": api_key} if api_key else {})}})  # fmt: skip
                with running_stack(remote) as url:
                    answers.append(httpx.post(url + "/inference/chat_completion", json=CHAT, timeout=30))
    message = f"The stack at {up_url} answered 401 Unauthorized: check the api_key of the remote provider in the run config."
    assert [(a.status_code, a.json().get("error", {}).get("message")) for a in answers[:2]] == [(502, message)] * 2
    assert answers[2].status_code == 200 and answers[2].json()["completion_message"]["content"] == "The capital of France is Paris."
    assert all(UPSTREAM_KEY not in a.text and "wrong-key-3" not in a.text for a in answers)
