"""Pipeline files: TOML, validated by pydantic, with errors that name the file and the key.

A pipeline file has a ``[pipeline]`` table and one table per stage::

    [pipeline]
    name = "cascade-local"
    architecture = "cascade"

    [stt]
    backend = "whisper"          # swap with: backend = "pocketsphinx"
    interim_interval_ms = 500     # settings of the chosen backend

    [stt.pocketsphinx]            # optional: settings kept for another backend
    fast_final = true

Keys of a stage table other than ``backend`` configure the chosen backend and are
checked against its parameters model, as are the tables named after other
backends, so a typo anywhere is an error, not a silent default.

The ``[interruption]`` table holds a cascade's barge-in rules
(:class:`processors.interruption.InterruptionParams`); a speech-to-speech
pipeline has no transcript to decide on and may only say ``rule = "speech"``;
its ``pause_bot`` (off unless set) pauses the bot at the user's speech onset
until the server decides (:mod:`processors.realtime.onset`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines import registry
from processors.interruption import InterruptionParams

__all__ = [
    "AudioConfig",
    "ConfigError",
    "PipelineConfig",
    "PipelineInfo",
    "ServeConfig",
    "StageConfig",
    "TaskConfig",
    "apply_overrides",
    "load_pipeline_file",
    "parse_pipeline",
]

Architecture = Literal["cascade", "s2s"]
REQUIRED_STAGES: dict[str, tuple[str, ...]] = {
    "cascade": ("transport", "vad", "stt", "llm", "tts"),
    "s2s": ("transport", "realtime"),
}


class ConfigError(ValueError):
    """A pipeline file is malformed; the message names the file, the key and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PipelineInfo(_Strict):
    """The ``[pipeline]`` table."""

    name: str = Field(min_length=1, description="Short name used in reports")
    architecture: Architecture = Field(description="'cascade' (STT, LLM, TTS) or 's2s'")
    description: str = ""
    system_prompt: str = Field(
        default="",
        description="How the assistant behaves: the cascade's system prompt, the realtime "
        "session's instructions unless the realtime stage sets its own",
    )


class AudioConfig(_Strict):
    """The ``[audio]`` table: sample rates inside the pipeline."""

    input_sample_rate: Literal[8000, 16000, 24000, 48000] = 16000
    output_sample_rate: Literal[16000, 22050, 24000, 48000] = 24000


class TaskConfig(_Strict):
    """The ``[task]`` table: lifecycle settings of the pipeline task."""

    allow_interruptions: bool = True
    error_policy: Literal["continue", "end", "cancel"] = "continue"
    idle_timeout_s: float | None = Field(default=None, gt=0)


class ServeConfig(_Strict):
    """The ``[serve]`` table: start ``parley serve`` for this pipeline's realtime stage.

    The server runs as a child process for as long as the conversation, and the
    realtime stage talks to it unless its ``websocket_base_url`` is set.
    """

    pipeline: str = Field(default="cascade-local", description="cascade the server runs")
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    set: list[str] = Field(default_factory=list, description="overrides for that pipeline")
    options: list[str] = Field(default_factory=list, description="server options KEY=VALUE")
    startup_timeout_s: float = Field(default=60.0, gt=0)


class StageConfig(_Strict):
    """One stage: the chosen backend and its validated parameters."""

    backend: str
    params: dict[str, Any] = Field(default_factory=dict)
    alternatives: dict[str, dict[str, Any]] = Field(default_factory=dict)


class PipelineConfig(_Strict):
    """A whole pipeline file, validated."""

    source: str = ""
    pipeline: PipelineInfo
    audio: AudioConfig = Field(default_factory=AudioConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    stages: dict[str, StageConfig] = Field(default_factory=dict)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    serve: ServeConfig | None = None
    interruption: InterruptionParams = Field(default_factory=InterruptionParams)
    raw: dict[str, Any] = Field(default_factory=dict, exclude=True)

    def stage(self, name: str) -> StageConfig:
        """The configuration of stage ``name``; raises ConfigError if the file lacks it."""
        try:
            return self.stages[name]
        except KeyError:
            raise ConfigError(f"{self.source}: no [{name}] table") from None


_TOP_LEVEL = {"pipeline", "audio", "task", "tools", "serve", "interruption", *registry.STAGES}


def load_pipeline_file(path: str | Path, overrides: Iterable[str] = ()) -> PipelineConfig:
    """Read, override (``stt.backend=pocketsphinx``) and validate a pipeline file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such pipeline file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    data = apply_overrides(data, overrides, source=str(file))
    return parse_pipeline(data, source=str(file))


def apply_overrides(
    data: Mapping[str, Any], overrides: Iterable[str], *, source: str = "<overrides>"
) -> dict[str, Any]:
    """Return a copy of ``data`` with ``dotted.key=value`` settings applied.

    Values are read as TOML (``3``, ``true``, ``"text"``, ``[1, 2]``); anything that is
    not valid TOML is taken as a plain string, so ``--set stt.backend=pocketsphinx`` works.
    Changing a stage's ``backend`` drops the settings that belonged to the old one.
    """
    result = _deep_copy(data)
    for item in overrides:
        key, sep, raw_value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{source}: override {item!r} must look like key.path=value")
        parts = key.split(".")
        if any(not p for p in parts):
            raise ConfigError(f"{source}: override key {key!r} has an empty part")
        value = _parse_value(raw_value.strip())
        table = result
        for part in parts[:-1]:
            existing = table.setdefault(part, {})
            if not isinstance(existing, dict):
                raise ConfigError(f"{source}: override {key!r}: {part!r} is not a table")
            table = existing
        last = parts[-1]
        if len(parts) == 2 and last == "backend" and table.get("backend") != value:
            old = table.get("backend")
            for k in [k for k, v in table.items() if k != "backend" and not isinstance(v, dict)]:
                del table[k]
            if isinstance(old, str) and old not in table:
                table[old] = {}
        table[last] = value
    return result


def parse_pipeline(data: Mapping[str, Any], *, source: str = "<pipeline>") -> PipelineConfig:
    """Validate a parsed pipeline file; every error names ``source`` and the key."""
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        allowed = ", ".join(sorted(_TOP_LEVEL))
        raise ConfigError(f"{source}: unknown table or key {unknown[0]!r}; allowed: {allowed}")
    info = _validate(PipelineInfo, data.get("pipeline"), source, "pipeline", required=True)
    audio = _validate(AudioConfig, data.get("audio", {}), source, "audio")
    task = _validate(TaskConfig, data.get("task", {}), source, "task")
    serve = _validate(ServeConfig, data["serve"], source, "serve") if "serve" in data else None
    interruption = _interruption(data, info.architecture, source)
    tools = data.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ConfigError(f"{source}: 'tools' must be an array of tables ([[tools]])")
    stages: dict[str, StageConfig] = {}
    for stage in registry.STAGES:
        if stage in data:
            stages[stage] = _parse_stage(stage, data[stage], source)
    missing = [s for s in REQUIRED_STAGES[info.architecture] if s not in stages]
    if missing:
        raise ConfigError(
            f"{source}: a {info.architecture} pipeline needs a [{missing[0]}] table "
            f"(stages: {', '.join(REQUIRED_STAGES[info.architecture])})"
        )
    return PipelineConfig(
        source=source,
        pipeline=info,
        audio=audio,
        task=task,
        stages=stages,
        tools=tools,
        serve=serve,
        interruption=interruption,
        raw=dict(data),
    )


def _interruption(data: Mapping[str, Any], architecture: str, source: str) -> InterruptionParams:
    """The ``[interruption]`` table; a speech-to-speech pipeline keeps the time rule."""
    table = data.get("interruption")
    if architecture != "cascade":
        # The server decides barge-in; pausing the bot at the onset is asked for by name.
        table = {"rule": "speech", "pause_bot": False, **(table or {})}
    params: InterruptionParams = _validate(InterruptionParams, table or {}, source, "interruption")
    if architecture != "cascade" and params.rule != "speech":
        raise ConfigError(
            f"{source}: interruption.rule: a {architecture} pipeline has no transcript to "
            f'decide barge-in on; use rule = "speech" (or leave [interruption] out)'
        )
    return params


def _parse_stage(stage: str, table: Any, source: str) -> StageConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{stage}] must be a table")
    name = table.get("backend")
    if not isinstance(name, str):
        choices = ", ".join(b.name for b in registry.backends(stage)) or "none"
        raise ConfigError(f"{source}: [{stage}] needs backend = one of: {choices}")
    try:
        backend = registry.get(stage, name)
    except registry.BackendError as exc:
        raise ConfigError(f"{source}: [{stage}] backend: {exc}") from None
    own = {k: v for k, v in table.items() if k != "backend" and not _is_backend_table(stage, k, v)}
    if name in table and isinstance(table[name], dict):
        own = {**table[name], **own}
    alternatives: dict[str, dict[str, Any]] = {}
    for key, value in table.items():
        if key != name and _is_backend_table(stage, key, value):
            other = registry.get(stage, key)
            _check_params(other, value, source, f"{stage}.{key}")
            alternatives[key] = value
    _check_params(backend, own, source, stage)
    return StageConfig(backend=name, params=own, alternatives=alternatives)


def _is_backend_table(stage: str, key: str, value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    try:
        registry.get(stage, key)
    except registry.BackendError:
        return False
    return True


def _check_params(
    backend: registry.Backend, params: dict[str, Any], source: str, where: str
) -> None:
    for key, value in backend.preset.items():
        if key in params and params[key] != value:
            raise ConfigError(
                f"{source}: [{where}] {key} = {params[key]!r} contradicts backend "
                f"{backend.name!r}, which means {key} = {value!r}; change the backend instead"
            )
    try:
        model = backend.params_model()
    except registry.BackendError as exc:
        raise ConfigError(f"{source}: [{where}]: {exc}") from None
    _validate(model, {**params, **backend.preset}, source, where)


def _validate(
    model: type[Any], value: Any, source: str, where: str, *, required: bool = False
) -> Any:
    if value is None and required:
        raise ConfigError(f"{source}: missing [{where}] table")
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{where}] must be a table")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, model, source, where)) from None


def _describe(exc: ValidationError, model: type[BaseModel], source: str, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        key = f"{where}.{loc}" if loc else where
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(model.model_fields)) or "no keys"
            lines.append(f"{source}: unknown key {key!r}; allowed: {allowed}")
        else:
            lines.append(f"{source}: {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
