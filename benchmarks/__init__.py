"""Benchmarks of Parley: engine overhead (:mod:`benchmarks.overhead`) and, later, pipelines."""
