"""Assembling pipelines: the backend registry, pipeline files, the factory and the CLI."""
