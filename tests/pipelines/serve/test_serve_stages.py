"""The session pipeline's stages as ``parley serve`` builds them from a pipeline file."""

from __future__ import annotations

from typing import Any, cast

from pipelines.config import load_pipeline_file
from pipelines.serve.stages import build_pipeline
from pipelines.shipped import resolve_pipeline
from processors.stt.whisper import WhisperSTT


def test_whisper_runs_without_interim_passes_the_session_would_not_read() -> None:
    config = load_pipeline_file(resolve_pipeline("cascade-local"))
    assert config.stage("stt").backend == "whisper"
    _task, stages = build_pipeline(config, cast(Any, None))
    assert isinstance(stages.stt, WhisperSTT)
    assert stages.stt.params.incremental and not stages.stt.params.interim_passes
    # The pipeline file's own settings are untouched (parley run keeps its interims).
    assert WhisperSTT().params.interim_passes
