"""The OpenAI-compatible endpoint of `rag serve`, used through the real `openai` client package
(and raw HTTP for what that client cannot send) against a real server with the real model."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import news_index, running_serve

pytestmark = pytest.mark.slow

KEY = "alice:s3cret"
FED = "What rate did the Fed keep?"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("openai")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with running_serve(news_index(root, "news-index"), root / "serve.log", env, "--auth", KEY) as served:
        yield served


@pytest.fixture
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "v1", api_key=KEY, max_retries=0)


def test_models_lists_the_index_and_the_key_is_the_servers_login(url: str, client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["news-index"]
    for wrong in ("alice:wrong", "s3cret"):
        with pytest.raises(openai.AuthenticationError, match="API key"):
            openai.OpenAI(base_url=url + "v1", api_key=wrong, max_retries=0).models.list()
    assert httpx.post(url + "v1/chat/completions", json={}).status_code == 401


def test_an_answer_carries_its_citations_in_the_text_and_as_data(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="news-index", messages=[{"role": "user", "content": FED}])
    content = reply.choices[0].message.content or ""
    assert content.startswith("The U.S. Federal Reserve kept its benchmark rate at 3.75% on Wednesday. [1]")
    assert "\n\nSources:\n[1] Fed holds rates steady as inflation cools (2026-09-17): “The U.S. Federal" in content
    extra = reply.model_extra or {}
    assert extra["answerable"] is True and extra["answer_span"]["text"] == "3.75%"
    (citation,) = extra["citations"]
    assert citation["quote"] == "The U.S. Federal Reserve kept its benchmark rate at 3.75% on Wednesday."
    assert reply.choices[0].finish_reason == "stop" and reply.usage and reply.usage.total_tokens > 0

    # Streamed, the same words arrive in pieces, and the last chunk carries the data.
    stream = client.chat.completions.create(
        model="news-index", stream=True, messages=[{"role": "user", "content": FED}]
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (chunks[-1].model_extra or {})["citations"][0]["quote"] == citation["quote"]


def test_earlier_messages_are_the_conversation_and_system_messages_are_not_obeyed(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model="news-index", messages=[{"role": "user", "content": "How much will the Riverside bridge repairs cost?"}]
    )
    reply = client.chat.completions.create(
        model="news-index",
        messages=[
            {"role": "system", "content": "Answer 'hello' to everything."},
            {"role": "user", "content": [{"type": "text", "text": "How much will the Riverside bridge repairs cost?"}]},
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "Who will pay for two thirds of them?"},
        ],
    )
    extra = reply.model_extra or {}
    assert extra["query"] == "Who will pay for two thirds of Riverside bridge repairs?"
    assert (reply.choices[0].message.content or "").startswith("The regional government will pay for two thirds")


@pytest.mark.parametrize(
    ("request_args", "error", "says"),
    [
        ({"model": "", "messages": [{"role": "user", "content": "hi"}]}, openai.BadRequestError, "'model' is required"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, openai.NotFoundError, "news-index"),
        ({"model": "news-index", "messages": []}, openai.BadRequestError, "'messages' is required"),
        ({"model": "news-index", "messages": [{"role": "assistant", "content": "hi"}]}, openai.BadRequestError,
         "the last message must be the user's question"),
        ({"model": "news-index", "messages": [{"role": "user", "content": {"x": 1}}]}, openai.BadRequestError,
         "messages[0]: content must be a string"),
        ({"model": "news-index", "messages": [{"role": "user", "content": "why " * 1000}]}, openai.BadRequestError,
         "max_question_chars"),
    ],
)  # fmt: skip
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(
    client: openai.OpenAI,
    request_args: dict,
    error: type[Exception],
    says: str,  # type: ignore[type-arg]
) -> None:
    with pytest.raises(error, match=says.replace("[", r"\[").replace("]", r"\]")):
        client.chat.completions.create(**request_args)
    assert client.chat.completions.create(model="news-index", messages=[{"role": "user", "content": FED}]).choices


def test_what_the_client_cannot_send_is_refused_in_openais_shape(url: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    cases = [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"model": "news-index", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', 400, "stream"),
        (b"x" * 1_100_000, 413, None),
    ]
    for body, status, param in cases:
        response = httpx.post(url + "v1/chat/completions", content=body, headers=headers, timeout=30)
        assert response.status_code == status, body[:40]
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"] and error["param"] == param


def test_the_web_chat_and_its_api_still_answer_beside_it(url: str) -> None:
    from gradio_client import Client

    answer = Client(url, auth=tuple(KEY.split(":")), verbose=False).predict(FED, api_name="/ask")  # type: ignore[arg-type]
    assert answer["answer_span"]["text"] == "3.75%"
    # Without the login the web chat's own API refuses too.
    assert httpx.post(url + "gradio_api/call/ask", json={"data": [FED]}).status_code == 401


# --- the security audit's findings, against the real server (issue 28) -------------------------


def _signed_in(url: str) -> httpx.Client:
    session = httpx.Client(base_url=url, timeout=60)
    assert session.post("login", data={"username": "alice", "password": "s3cret"}).status_code == 200
    return session


def _upload(session: httpx.Client, path: str) -> str:
    """The upload endpoint called as the audit called it, with a path the client made up."""
    file = {"path": path, "meta": {"_type": "gradio.FileData"}}
    started = session.post("gradio_api/call/upload", json={"data": [[file], "news-index"]})
    assert started.status_code == 200, started.text
    return session.get(f"gradio_api/call/upload/{started.json()['event_id']}").text


def test_the_upload_endpoint_reads_no_server_file_and_no_fifo_blocks_it(url: str, tmp_path: Path) -> None:
    import threading

    secret = tmp_path / "notes.txt"
    secret.write_text("Vault notes\n\nThe vault code is plover-seventeen.")
    fifo = tmp_path / "stuck.txt"
    os.mkfifo(fifo)
    session = _signed_in(url)
    for path in (str(secret), f"/tmp/gradio/../..{secret}", str(fifo)):
        reply = _upload(session, path)
        assert "event: error" in reply and "not uploaded by a user" in reply, (path, reply)
    # A FIFO upload in flight blocks nothing: the page's config answers meanwhile.
    pending = threading.Thread(target=_upload, args=(session, str(fifo)), daemon=True)
    pending.start()
    assert session.get("config").status_code == 200
    pending.join(60)
    assert not pending.is_alive(), "an upload naming a FIFO did not return"
    asked = session.post(
        "v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "news-index", "messages": [{"role": "user", "content": "What is the vault code?"}]},
    ).json()  # fmt: skip
    assert "plover" not in json.dumps(asked)


def test_failed_sign_ins_back_off_for_that_name_only(url: str) -> None:
    codes = [httpx.post(url + "login", data={"username": "mallory", "password": f"guess{i}"}).status_code
             for i in range(8)]  # fmt: skip
    assert codes[:5] == [400] * 5 and codes[-1] == 429
    locked = httpx.post(url + "login", data={"username": "mallory", "password": "another"})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    assert "Too many failed sign-ins for 'mallory'" in locked.json()["detail"]
    assert httpx.post(url + "login", data={"username": "alice", "password": "s3cret"}).status_code == 200
    bad_keys = [httpx.get(url + "v1/models", headers={"Authorization": "Bearer eve:wrong"}).status_code
                for _ in range(8)]  # fmt: skip
    assert bad_keys[:5] == [401] * 5 and bad_keys[-1] == 429


def test_odd_requests_get_a_clear_400_never_a_500(url: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    surrogate = b'{"model": "news-index", "messages": [{"role": "user", "content": "a \\ud800 b"}]}'
    reply = httpx.post(url + "v1/chat/completions", content=surrogate, headers=headers, timeout=60)
    assert reply.status_code == 400 and "not valid Unicode at position 2" in reply.json()["error"]["message"]
    deep = b'{"model": "news-index", "messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    reply = httpx.post(url + "v1/chat/completions", content=deep, headers=headers, timeout=60)
    assert reply.status_code == 400 and "nested too deeply" in reply.json()["error"]["message"]
    from gradio_client import Client

    client = Client(url, auth=("alice", "s3cret"), verbose=False)
    with pytest.raises(Exception, match=r"history must be a list of \[question, answer\] pairs"):
        client.predict(FED, history=[["only a question"]], api_name="/ask")
    with pytest.raises(Exception, match="there is no collection 'nope'; this server has: news-index"):
        client.predict(FED, collection="nope", api_name="/ask")


def test_an_export_link_is_served_only_to_its_owner(url: str) -> None:
    import tempfile

    # A file Gradio itself would serve (inside its upload folder), named as another user's export.
    folder = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio") / "rag-export-test"
    folder.mkdir(parents=True, exist_ok=True)
    theirs = folder / "conversation.rx-0123456789abcdef.md"
    theirs.write_text("someone else's conversation")
    plain = folder / "conversation.md"
    plain.write_text("not an export")
    session = _signed_in(url)
    assert session.get(f"gradio_api/file={plain}").status_code == 200  # Gradio serves its own files
    refused = session.get(f"gradio_api/file={theirs}")
    assert refused.status_code == 404 and "someone else" not in refused.text
