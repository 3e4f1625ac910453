"""Tools (function calling) declared once and used by every architecture.

A :class:`ToolSet` holds tool declarations (name, description, JSON-schema
parameters) with their handler functions. It renders them for chat completions
(:meth:`ToolSet.chat_tools`) and for a realtime session
(:meth:`ToolSet.realtime_tools`), and runs a call by name with the model's JSON
arguments (:meth:`ToolSet.run`), never raising: a bad argument, a failing
handler or a timeout becomes a JSON ``{"error": ...}`` result for the model.

Handlers are plain or ``async`` functions called with the arguments as keyword
arguments. Plain functions run in a worker thread, so a slow one never blocks
the event loop; :meth:`ToolSet.start` runs a call as a background task so the
conversation goes on while it works::

    tools = ToolSet()

    @tools.tool()
    async def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict:
        \"\"\"Current weather in a city.\"\"\"
        return {"city": city, "temp": 21, "unit": unit}

When parameters are not given they are derived from the signature with
pydantic, and arguments are validated against it before the handler runs.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from pydantic import BaseModel, ValidationError, create_model

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

__all__ = ["Tool", "ToolResult", "ToolSet", "ToolTask"]

Handler = Callable[..., Any]
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def _signature_model(name: str, fn: Handler) -> type[BaseModel]:
    """A pydantic model of ``fn``'s keyword-callable parameters."""
    hints = (
        inspect.get_annotations(fn, eval_str=True) if not isinstance(fn, functools.partial) else {}
    )
    definitions: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            continue
        annotation = hints.get(param.name, Any)
        default = ... if param.default is param.empty else param.default
        definitions[param.name] = (annotation, default)
    return create_model(f"{name}_arguments", **definitions)


def _doc_summary(fn: Handler) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip()


@dataclass(slots=True)
class Tool:
    """One tool: its declaration, its handler (None: declared only) and its timeout."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    handler: Handler | None = None
    timeout_s: float | None = None
    arguments_model: type[BaseModel] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.name or not set(self.name) <= _NAME_OK or len(self.name) > 64:
            raise ValueError(
                f"tool name {self.name!r} is invalid: use 1-64 letters, digits, '_' or '-'"
            )
        if not isinstance(self.parameters, dict) or self.parameters.get("type") != "object":
            raise ValueError(
                f"tool {self.name!r}: parameters must be a JSON schema with type 'object', "
                f"got {self.parameters!r}"
            )
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"tool {self.name!r}: timeout_s must be positive")

    def chat_schema(self) -> dict[str, Any]:
        """The declaration as a chat-completions tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def realtime_schema(self) -> dict[str, Any]:
        """The declaration as a realtime session tool."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one call. ``output`` is the string given back to the model."""

    call_id: str
    name: str
    output: str
    ok: bool
    error: str = ""
    value: Any = field(default=None, repr=False)
    elapsed_s: float = 0.0


class ToolTask:
    """A call running in the background; :meth:`cancel` abandons it."""

    def __init__(self, call_id: str, name: str) -> None:
        self.call_id = call_id
        self.name = name
        self.result: ToolResult | None = None
        self._scope = anyio.CancelScope()

    @property
    def done(self) -> bool:
        """True once the result is in (or the call was cancelled)."""
        return self.result is not None or self._scope.cancel_called

    def cancel(self) -> None:
        """Stop waiting for the call; its result callback will not run."""
        self._scope.cancel()


def _error(call_id: str, name: str, message: str, started: float) -> ToolResult:
    return ToolResult(
        call_id=call_id,
        name=name,
        output=json.dumps({"error": message}),
        ok=False,
        error=message,
        elapsed_s=time.perf_counter() - started,
    )


def _import_handler(target: str) -> Handler:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"handler must look like 'package.module:function', got {target!r}")
    try:
        handler = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import tool handler {target!r}: {exc}") from exc
    if not callable(handler):
        raise ValueError(f"tool handler {target!r} is not callable")
    return handler  # type: ignore[no-any-return]


class ToolSet:
    """Tool declarations with their handlers; see the module docstring."""

    def __init__(self, tools: Iterable[Tool] = (), *, timeout_s: float = 10.0) -> None:
        """Create a set; ``timeout_s`` bounds each call unless its tool says otherwise."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.timeout_s = timeout_s
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add_tool(tool)

    # ---------------------------------------------------------------- declaring

    def add_tool(self, tool: Tool) -> Tool:
        """Add a :class:`Tool`; a name can be declared once."""
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is declared twice")
        self._tools[tool.name] = tool
        return tool

    def add(
        self,
        handler: Handler | None,
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Tool:
        """Declare ``handler`` as a tool. Missing name, description and parameters
        come from the function's name, docstring and signature."""
        if handler is None and name is None:
            raise ValueError("a tool without a handler needs a name")
        tool_name = str(name or getattr(handler, "__name__", ""))
        model = None
        if parameters is None and handler is not None:
            model = _signature_model(tool_name, handler)
            parameters = _strip_titles(model.model_json_schema())
            parameters.setdefault("properties", {})
        if description is None:
            description = _doc_summary(handler) if handler is not None else ""
        return self.add_tool(
            Tool(
                name=tool_name,
                description=description,
                parameters=parameters or {"type": "object", "properties": {}},
                handler=handler,
                timeout_s=timeout_s,
                arguments_model=model,
            )
        )

    def tool(
        self,
        name: str | None = None,
        *,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`; returns the function unchanged."""

        def register(fn: Handler) -> Handler:
            self.add(
                fn, name=name, description=description, parameters=parameters, timeout_s=timeout_s
            )
            return fn

        return register

    @classmethod
    def from_declarations(
        cls,
        declarations: Iterable[Mapping[str, Any]],
        handlers: Mapping[str, Handler] | None = None,
        *,
        timeout_s: float = 10.0,
    ) -> ToolSet:
        """Build a set from declarations (a pipeline file's ``[[tools]]``).

        Each declaration is flat (``name``, ``description``, ``parameters``) or
        chat-shaped (``{"type": "function", "function": {...}}``), and may name its
        handler as ``handler = "package.module:function"`` and a ``timeout_s``.
        ``handlers`` maps tool names to functions and wins over ``handler``.
        """
        found = cls(timeout_s=timeout_s)
        for decl in declarations:
            spec = dict(decl.get("function", decl))
            name = spec.get("name")
            if not isinstance(name, str):
                raise ValueError(f"tool declaration without a name: {dict(decl)!r}")
            handler: Handler | None = (handlers or {}).get(name)
            target = decl.get("handler", spec.get("handler"))
            if handler is None and isinstance(target, str):
                handler = _import_handler(target)
            found.add_tool(
                Tool(
                    name=name,
                    description=str(spec.get("description", "")),
                    parameters=dict(spec.get("parameters") or {"type": "object", "properties": {}}),
                    handler=handler,
                    timeout_s=decl.get("timeout_s", spec.get("timeout_s")),
                )
            )
        return found

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    @property
    def names(self) -> list[str]:
        """Tool names in declaration order."""
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, if declared."""
        return self._tools.get(name)

    def chat_tools(self) -> list[dict[str, Any]]:
        """All tools as chat-completions ``tools``."""
        return [t.chat_schema() for t in self._tools.values()]

    def realtime_tools(self) -> list[dict[str, Any]]:
        """All tools as realtime ``session.tools``."""
        return [t.realtime_schema() for t in self._tools.values()]

    def __repr__(self) -> str:
        return f"<ToolSet {', '.join(self._tools) or 'empty'}>"

    # ------------------------------------------------------------------ running

    async def run(
        self, name: str, arguments: str | Mapping[str, Any] | None, *, call_id: str = ""
    ) -> ToolResult:
        """Run tool ``name`` with ``arguments`` (a JSON object string or a mapping).

        Never raises for a failure of the call: unknown tools, bad JSON, invalid
        arguments, handler exceptions and timeouts all give ``ok=False`` results
        whose ``output`` is ``{"error": "..."}``. Cancellation propagates.
        """
        started = time.perf_counter()
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(self._tools) or "none"
            return _error(call_id, name, f"unknown tool {name!r} (known: {known})", started)
        if tool.handler is None:
            return _error(call_id, name, f"tool {name!r} has no handler here", started)
        try:
            kwargs = self._arguments(tool, arguments)
        except ValueError as exc:
            return _error(call_id, name, f"invalid arguments for {name}: {exc}", started)
        timeout = tool.timeout_s or self.timeout_s
        value: Any = None
        with anyio.move_on_after(timeout) as scope:
            try:
                value = await self._call(tool.handler, kwargs)
            except Exception as exc:
                return _error(call_id, name, f"{name} failed: {type(exc).__name__}: {exc}", started)
        if scope.cancelled_caught:
            return _error(call_id, name, f"{name} timed out after {timeout:g} s", started)
        try:
            output = value if isinstance(value, str) else json.dumps(value, default=str)
        except (TypeError, ValueError) as exc:
            return _error(call_id, name, f"{name} returned an unserialisable value: {exc}", started)
        return ToolResult(
            call_id=call_id,
            name=name,
            output=output,
            ok=True,
            value=value,
            elapsed_s=time.perf_counter() - started,
        )

    def start(
        self,
        task_group: TaskGroup,
        name: str,
        arguments: str | Mapping[str, Any] | None,
        *,
        call_id: str,
        on_result: Callable[[ToolResult], Awaitable[None]],
    ) -> ToolTask:
        """Run a call in ``task_group`` and await ``on_result(result)`` when it is done."""
        task = ToolTask(call_id, name)

        async def runner() -> None:
            with task._scope:
                task.result = await self.run(name, arguments, call_id=call_id)
                await on_result(task.result)

        task_group.start_soon(runner, name=f"tool:{name}:{call_id}")
        return task

    @staticmethod
    def _arguments(tool: Tool, arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
        if arguments is None or arguments == "":
            parsed: Any = {}
        elif isinstance(arguments, str):
            try:
                parsed = json.loads(arguments)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg} at position {exc.pos})") from None
        else:
            parsed = dict(arguments)
        if not isinstance(parsed, dict):
            raise ValueError(f"expected a JSON object, got {type(parsed).__name__}")
        if tool.arguments_model is not None:
            try:
                model = tool.arguments_model.model_validate(parsed)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                    for e in exc.errors()
                )
                raise ValueError(problems) from None
            return {k: getattr(model, k) for k in type(model).model_fields}
        missing = [k for k in tool.parameters.get("required", []) if k not in parsed]
        if missing:
            raise ValueError(f"missing required argument(s): {', '.join(missing)}")
        return parsed

    @staticmethod
    async def _call(handler: Handler, kwargs: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
        ):
            return await handler(**kwargs)
        result = await anyio.to_thread.run_sync(
            functools.partial(handler, **kwargs), abandon_on_cancel=True
        )
        if inspect.isawaitable(result):
            result = await result
        return result
