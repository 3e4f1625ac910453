"""Tests of ``parley serve``, the local Realtime-protocol server."""
