"""The README's examples and commands stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_python_examples_run(tmp_path: Path) -> None:
    """Each Python block runs as written; the voice one on a question spoken by Piper."""
    from framework.audio import write_wav
    from tests.speech import synthesize_speech

    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2, "the README lost its Python examples"
    [question] = synthesize_speech(["What is the capital of France?"])
    silence = bytes(32000)
    write_wav(tmp_path / "question.wav", silence + question + silence * 2, 16000)
    for block in blocks:
        result = subprocess.run(
            [sys.executable, "-c", block],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        if "Shout" in block:
            assert result.stdout.strip() == "HELLO"
        if "question.wav" in block:
            assert (tmp_path / "reply.wav").stat().st_size > 0
            assert "capital" in result.stdout.lower()  # the user's words reached the context


def test_quick_start_has_two_commands_using_the_setup_script() -> None:
    quick = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in quick.splitlines() if line.strip()]
    assert len(commands) == 2
    assert all(c.startswith("bash scripts/setup.sh") for c in commands)
    assert "pytest" in commands[1]
