"""VAD measurements: the backends on synthetic noise and on Piper speech mixed with noise."""
