"""An OpenAI-compatible endpoint of this project's own, served by `rag serve` beside the web chat.

Chat clients (Open WebUI, the ``openai`` package, curl) use an index as a "model":
``GET /v1/models`` lists it, ``POST /v1/chat/completions`` answers the last user message from
the documents, the earlier messages being the conversation. The answer's text ends with its
sources, and the response carries them as data too (``citations``, ``answer_span``,
``answerable``, ``query``), in the final chunk when streaming.

Errors have OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with its status
codes, so a client reports them in its own terms. With ``--auth USER:PASSWORD`` the API key is
that same ``USER:PASSWORD``.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from rag.answering.backends import LLMError
from rag.chat.transcript import HistoryError, from_messages, with_sources
from rag.ingest.chunking import count_tokens
from rag.search.query import SearchError
from rag.types import Answer
from ui.guard import LoginThrottle

if TYPE_CHECKING:
    from rag.api import RAG
    from ui.service import ChatService

MAX_BODY_BYTES = 1_000_000
MAX_MESSAGES = 200


class APIError(Exception):
    """An error to send as OpenAI's JSON error body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}.get(
            self.status, "invalid_request_error"
        )
        if self.status >= 500:
            kind = "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


class OpenAIEndpoint:
    """Parses requests, answers through ``RAG.ask_stream``, and shapes replies like OpenAI's."""

    def __init__(
        self, service: ChatService, auth: tuple[str, str] | None = None, throttle: LoginThrottle | None = None
    ) -> None:
        self.service = service
        self.api_key = f"{auth[0]}:{auth[1]}" if auth else None
        # Wrong keys count like failed sign-ins (one throttle for both doors).
        self.throttle = throttle or LoginThrottle()

    def check_key(self, header: str | None, client: str = "") -> None:
        if self.api_key is None:
            return
        scheme, _, given = (header or "").partition(" ")
        user = given.strip().partition(":")[0]
        refusal = self.throttle.refusal(client, user)
        if refusal:
            raise APIError(429, refusal[0], code="rate_limit_exceeded")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.api_key.encode()):
            self.throttle.failed(client, user)
            raise APIError(
                401, "Incorrect or missing API key: send the server's USER:PASSWORD as the key", code="invalid_api_key"
            )
        self.throttle.succeeded(client, user)

    def models(self) -> dict[str, Any]:
        created = int(time.time())
        data = [{"id": name, "object": "model", "created": created, "owned_by": "rag"} for name in self.service.names]
        return {"object": "list", "data": data}

    def parse(self, body: bytes) -> tuple[RAG, str, list[tuple[str, str]], str, bool]:
        """(index, model name, history, question, stream) from a request body, or an APIError."""
        if len(body) > MAX_BODY_BYTES:
            raise APIError(413, f"the request holds over {MAX_BODY_BYTES // 1_000_000} MB", code="request_too_large")
        try:
            request = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise APIError(400, f"the request body is not JSON ({exc})") from exc
        except RecursionError:  # Python's parser recurses once per level of nesting
            raise APIError(400, "the request body is JSON nested too deeply to be a chat request") from None
        if not isinstance(request, dict):
            raise APIError(400, "the request body must be a JSON object")
        model = request.get("model")
        if not isinstance(model, str) or not model:
            raise APIError(400, "'model' is required: one of " + ", ".join(self.service.names), param="model")
        if model not in self.service.collections:
            raise APIError(
                404, f"The model {model!r} does not exist; this server has: {', '.join(self.service.names)}",
                param="model", code="model_not_found",
            )  # fmt: skip
        rag = self.service.collections[model].rag
        if rag is None:
            raise APIError(404, f"The collection {model!r} holds no documents yet", param="model",
                           code="model_not_found")  # fmt: skip
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise APIError(400, "'messages' is required: a non-empty list of {role, content}", param="messages")
        if len(messages) > MAX_MESSAGES:
            raise APIError(400, f"{len(messages)} messages is more than {MAX_MESSAGES}", param="messages")
        stream = request.get("stream", False)
        if not isinstance(stream, bool):
            raise APIError(400, "'stream' must be true or false", param="stream")
        try:
            history, question = from_messages(messages)
        except HistoryError as exc:
            raise APIError(400, str(exc), param="messages") from exc
        assert question is not None
        return rag, model, history, question, stream

    def answer(self, rag: RAG, history: list[tuple[str, str]], question: str) -> Iterator[str | Answer]:
        """The answer's stream; a bad question is an APIError before anything is sent."""
        events = rag.ask_stream(question, history=history)
        try:
            first = next(events)
        except SearchError as exc:
            too_long = "max_question_chars" in str(exc)
            raise APIError(400, str(exc), "messages", "context_length_exceeded" if too_long else None) from exc
        except LLMError as exc:
            raise APIError(502, f"the language model behind this server failed: {exc}") from exc
        yield first
        yield from events

    def completion(self, model: str, history: list[tuple[str, str]], question: str, answer: Answer) -> dict[str, Any]:
        data = answer.to_json()
        content = with_sources(data)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": _usage(history, question, content),
            **_extras(data),
        }

    def chunks(self, model: str, events: Iterator[str | Answer]) -> Iterator[str]:
        """Server-sent events: a role, the answer as written, its sources, then [DONE]."""
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            chunk = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}  # fmt: skip
            return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

        yield event({"role": "assistant", "content": ""})
        try:
            for item in events:
                if isinstance(item, Answer):
                    data = item.to_json()
                    sources = with_sources(data)[len(item.text) :]
                    if sources:
                        yield event({"content": sources})
                    yield event({}, "stop", **_extras(data))
                elif item:
                    yield event({"content": item})
        except (SearchError, LLMError) as exc:
            # Headers are gone: the error travels as an event, as OpenAI's own stream does.
            yield f"data: {json.dumps(APIError(502, str(exc)).body())}\n\n"
        yield "data: [DONE]\n\n"


def _extras(data: dict[str, Any]) -> dict[str, Any]:
    """What the answer (its JSON) rests on, as data beside OpenAI's fields."""
    return {key: data[key] for key in ("citations", "answer_span", "answerable", "query")}


def _usage(history: list[tuple[str, str]], question: str, content: str) -> dict[str, int]:
    asked = count_tokens(question) + sum(count_tokens(q) + count_tokens(a) for q, a in history)
    written = count_tokens(content)
    return {"prompt_tokens": asked, "completion_tokens": written, "total_tokens": asked + written}


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def add_routes(app: FastAPI, endpoint: OpenAIEndpoint) -> None:
    """``GET /v1/models`` and ``POST /v1/chat/completions`` on ``app``."""

    def failed(exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.get("/v1/models")
    def models(request: Request) -> Response:
        try:
            endpoint.check_key(request.headers.get("authorization"), _client(request))
        except APIError as exc:
            return failed(exc)
        return JSONResponse(endpoint.models())

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            endpoint.check_key(request.headers.get("authorization"), _client(request))
            body = bytearray()
            async for part in request.stream():  # read in parts, so a huge body stops early
                body += part
                if len(body) > MAX_BODY_BYTES:
                    break
            rag, model, history, question, stream = endpoint.parse(bytes(body))
            # Answering is blocking work (the model, SQLite): a worker thread, never the event loop.
            events = endpoint.answer(rag, history, question)
            first = await run_in_threadpool(next, events)
        except APIError as exc:
            return failed(exc)

        def rest() -> Iterator[str | Answer]:
            yield first
            yield from events

        if stream:
            return StreamingResponse(endpoint.chunks(model, rest()), media_type="text/event-stream")
        try:
            answer = [item for item in await run_in_threadpool(list, rest()) if isinstance(item, Answer)][-1]
        except LLMError as exc:  # the LLM failed after its first words
            return failed(APIError(502, f"the language model behind this server failed: {exc}"))
        return JSONResponse(endpoint.completion(model, history, question, answer))
