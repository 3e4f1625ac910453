"""What the OpenAI cascade backends share: client settings, the key, key-free error text.

The key is read from the environment variable named by ``api_key_env`` when a
backend starts; it goes to the SDK client and nowhere else. A server other than
OpenAI (``base_url`` set: llama.cpp, Ollama, vLLM, ``parley serve``) usually
needs no key, so a placeholder is sent when the variable is unset.
:func:`describe_error` turns an SDK exception into one line without the key.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OpenAIClientParams", "api_key", "describe_error", "make_client"]

_PLACEHOLDER = "not-needed"


class OpenAIClientParams(BaseModel):
    """Connection settings shared by the OpenAI cascade backends."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL (e.g. http://127.0.0.1:8080/v1 for llama.cpp, "
        "http://127.0.0.1:11434/v1 for Ollama); None is OpenAI (or OPENAI_BASE_URL).",
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        min_length=1,
        description="Environment variable holding the API key (optional with a base_url).",
    )
    timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(default=1, ge=0, le=10, description="SDK retries on failure.")


def api_key(params: OpenAIClientParams) -> str:
    """The key from the environment; a placeholder for a custom server without one.

    Raises ``RuntimeError`` naming the variable when OpenAI itself needs the key.
    """
    key = os.environ.get(params.api_key_env, "").strip()
    if key:
        return key
    if params.base_url:
        return _PLACEHOLDER
    raise RuntimeError(
        f"the environment variable {params.api_key_env} is not set: export your OpenAI API "
        "key there, set api_key_env to another variable, or set base_url to a local server"
    )


def make_client(params: OpenAIClientParams, *, sync: bool = False) -> Any:
    """An ``AsyncOpenAI`` (or ``OpenAI``) client for ``params``."""
    from openai import AsyncOpenAI, OpenAI

    cls = OpenAI if sync else AsyncOpenAI
    kwargs: dict[str, Any] = {
        "api_key": api_key(params),
        "timeout": params.timeout_s,
        "max_retries": params.max_retries,
    }
    if params.base_url:
        kwargs["base_url"] = params.base_url
    return cls(**kwargs)


def describe_error(exc: BaseException, params: OpenAIClientParams) -> str:
    """One line about ``exc``: HTTP status and the server's message, never the key."""
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    text = f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "") + f": {message}"
    key = os.environ.get(params.api_key_env, "").strip()
    return text.replace(key, "***") if key else text
