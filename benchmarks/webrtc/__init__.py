"""The WebRTC transport's cost: many concurrent sessions on an echo pipeline (no models)."""
