"""``python -m benchmarks.overhead``."""

from benchmarks.overhead.cli import main

raise SystemExit(main())
