"""``parley bench sweep``: a grid of pipeline settings benchmarked cell by cell.

A *cell* is one configuration of one pipeline over one conversation, measured by
an ordinary ``parley bench`` run. Cells run one at a time on this machine, or as
Ray tasks that each reserve a whole node; either way each finished cell is stored
as it completes, and the finished cells merge into one bench results document
and a Pareto report of voice-to-voice p50 against WER and talk-overs.

Modules:

* :mod:`.grid` - ``--grid KEY=V1,V2`` axes and their cartesian product.
* :mod:`.cells` - a cell's spec and :func:`~.cells.run_cell`, which runs it anywhere.
* :mod:`.store` - the per-cell folders: written atomically, skipped on resume.
* :mod:`.local`, :mod:`.ray_executor` - the two executors.
* :mod:`.merge`, :mod:`.pareto`, :mod:`.report` - merged results, the front, reports.
* :mod:`.cli` - ``main(argv)`` behind ``parley bench sweep``.
"""
