"""Tests for framework.audio.wav: reading any soundfile format, writing PCM16 WAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from framework.audio import (
    WavAudio,
    WavWriter,
    interleave,
    is_wav,
    read_wav,
    resample,
    sine_wave,
    to_mono,
    write_wav,
)


def ints(data: bytes, num_channels: int = 1) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").reshape(-1, num_channels).astype(np.int64)


def stereo(freq: float, sample_rate: int, duration_s: float, amplitude: float) -> bytes:
    left = sine_wave(freq, sample_rate, duration_s, amplitude)
    return interleave(left, sine_wave(freq * 1.5, sample_rate, duration_s, amplitude / 2))


def test_write_then_read_round_trips_exactly(tmp_path: Path) -> None:
    data = stereo(440, 16000, 0.25, 0.8)
    path = tmp_path / "stereo.wav"
    write_wav(path, data, 16000, num_channels=2)
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels) == (
        "WAV",
        "PCM_16",
        16000,
        2,
    )
    audio = read_wav(path)
    assert audio == WavAudio(pcm=data, sample_rate=16000, num_channels=2)
    assert audio.num_samples == 4000
    assert audio.duration_s == 0.25


def test_read_accepts_str_paths(tmp_path: Path) -> None:
    path = str(tmp_path / "a.wav")
    write_wav(path, bytes(32), 8000)
    assert read_wav(path).pcm == bytes(32)


@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [("WAV", "FLOAT"), ("WAV", "DOUBLE"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("FLAC", "PCM_24")],
)
def test_read_converts_other_sample_formats(tmp_path: Path, fmt: str, subtype: str) -> None:
    t = np.arange(4000) / 16000
    x = 0.6 * np.sin(2 * np.pi * 300 * t)
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(str(path), x, 16000, format=fmt, subtype=subtype)
    audio = read_wav(path)
    assert (audio.sample_rate, audio.num_channels) == (16000, 1)
    assert np.abs(ints(audio.pcm)[:, 0] - x * 32768).max() <= 1


def test_read_float_file_clips_out_of_range_samples(tmp_path: Path) -> None:
    path = tmp_path / "hot.wav"
    sf.write(str(path), np.array([0.5, 1.5, -1.5, -0.25]), 8000, subtype="FLOAT")
    assert ints(read_wav(path).pcm)[:, 0].tolist() == [16384, 32767, -32768, -8192]


def test_read_mono_mixes_channels(tmp_path: Path) -> None:
    data = stereo(440, 16000, 0.1, 0.8)
    write_wav(tmp_path / "s.wav", data, 16000, 2)
    audio = read_wav(tmp_path / "s.wav", mono=True)
    assert audio.num_channels == 1
    assert audio.pcm == to_mono(data, 2)


def test_read_resamples(tmp_path: Path) -> None:
    data = stereo(440, 48000, 0.5, 0.5)
    write_wav(tmp_path / "hi.wav", data, 48000, 2)
    audio = read_wav(tmp_path / "hi.wav", sample_rate=16000, mono=True)
    assert (audio.sample_rate, audio.num_channels, audio.num_samples) == (16000, 1, 8000)
    assert audio.pcm == resample(to_mono(data, 2), 48000, 16000)
    assert read_wav(tmp_path / "hi.wav", sample_rate=48000).pcm == data


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such audio file"):
        read_wav(tmp_path / "missing.wav")


def test_read_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio")
    with pytest.raises(ValueError, match=r"notes\.wav: not a readable audio file: .+") as info:
        read_wav(path)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_read_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a readable audio file: it is a directory"):
        read_wav(tmp_path)


def test_read_rejects_bad_target_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sample_rate must be positive, got 0"):
        read_wav(tmp_path / "missing.wav", sample_rate=0)


def test_wav_writer_streams_pieces(tmp_path: Path) -> None:
    data = sine_wave(440, 8000, 0.3)
    path = tmp_path / "stream.wav"
    with WavWriter(path, 8000) as writer:
        was_closed = writer.closed
        for start in range(0, len(data), 222):
            writer.write(data[start : start + 222])
        writer.write(b"")
        assert writer.num_samples == len(data) // 2
    assert not was_closed
    assert writer.closed
    assert read_wav(path) == WavAudio(pcm=data, sample_rate=8000)


def test_wav_writer_leaves_valid_file_after_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "partial.wav"

    def write_then_fail() -> None:
        with WavWriter(path, 16000, 2) as writer:
            writer.write(bytes(400))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    audio = read_wav(path)
    assert (audio.num_channels, audio.num_samples) == (2, 100)


def test_wav_writer_close_is_idempotent_and_final(tmp_path: Path) -> None:
    writer = WavWriter(tmp_path / "w.wav", 16000)
    assert (writer.sample_rate, writer.num_channels) == (16000, 1)
    assert writer.path.endswith("w.wav")
    writer.close()
    writer.close()
    assert "closed" in repr(writer)
    with pytest.raises(ValueError, match="WavWriter is closed"):
        writer.write(bytes(2))
    assert read_wav(tmp_path / "w.wav").pcm == b""


def test_wav_writer_validates(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such directory"):
        WavWriter(tmp_path / "nope" / "x.wav", 16000)
    with pytest.raises(ValueError, match="sample_rate must be positive, got -1"):
        WavWriter(tmp_path / "x.wav", -1)
    with WavWriter(tmp_path / "x.wav", 16000, 2) as writer:
        with pytest.raises(ValueError, match="multiple of 4 bytes, got 2"):
            writer.write(bytes(2))
        with pytest.raises(TypeError, match="must be PCM16 audio as bytes, got str"):
            writer.write("ab")  # type: ignore[arg-type]


def test_write_wav_rejects_bad_pcm_before_creating_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.wav"
    with pytest.raises(ValueError, match="even number of bytes, got 3"):
        write_wav(path, b"abc", 16000)
    assert not path.exists()


def test_wav_audio_validates() -> None:
    with pytest.raises(ValueError, match="multiple of 4 bytes, got 2"):
        WavAudio(pcm=bytes(2), sample_rate=16000, num_channels=2)
    assert "pcm" not in repr(WavAudio(pcm=bytes(2), sample_rate=16000))


def _cut(tmp_path: Path, keep_bytes: int, name: str = "cut.wav") -> Path:
    """A 2 s, 16 kHz mono WAV whose file stops ``keep_bytes`` into its audio."""
    whole = tmp_path / "whole.wav"
    write_wav(whole, sine_wave(300, 16000, 2.0), 16000)
    data = whole.read_bytes()
    assert data[36:40] == b"data"  # the header write_wav makes: 44 bytes
    path = tmp_path / name
    path.write_bytes(data[: 44 + keep_bytes])
    return path


def test_a_wav_cut_after_its_header_is_refused(tmp_path: Path) -> None:
    path = _cut(tmp_path, 0)
    with pytest.raises(
        ValueError, match=r"cut\.wav: not a readable audio file: .*promises 2\.000 s"
    ):
        read_wav(path)


def test_a_wav_cut_in_the_middle_is_read_with_a_warning_saying_how_much_is_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _cut(tmp_path, 16000 * 2 // 2 + 1)  # half a second, and a stray byte
    with caplog.at_level("WARNING", logger="parley"):
        audio = read_wav(path)
    assert audio.num_samples == 8000
    [record] = caplog.records
    assert record.getMessage() == (
        f"{path}: cut short: its header promises 2.000 s of audio, the file holds 0.500 s "
        "(1.500 s missing); reading what is there"
    )


def test_a_complete_wav_reads_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _cut(tmp_path, 64000)
    with caplog.at_level("WARNING", logger="parley"):
        assert read_wav(path).num_samples == 32000
    assert not caplog.records


def test_is_wav_tells_a_wav_header_from_other_files(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", sine_wave(300, 16000, 0.1), 16000)
    sf.write(str(tmp_path / "a.flac"), np.zeros(1600), 16000)
    (tmp_path / "a.txt").write_text("RIFF but not a wave")
    (tmp_path / "empty").write_bytes(b"")
    assert is_wav(tmp_path / "a.wav")
    assert not is_wav(tmp_path / "a.flac")
    assert not is_wav(tmp_path / "a.txt")
    assert not is_wav(tmp_path / "empty")
