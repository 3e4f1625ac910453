"""End-of-turn measurements: Smart Turn v3.2 against an LLM's end-of-utterance probability."""
