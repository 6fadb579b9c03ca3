"""The ``ppgen`` command line: ``fit``, ``evaluate``, ``sample``, ``score``, ``posterior``, ...

Every command has ``--help``; a user mistake (bad arguments, unreadable data, a broken
checkpoint, an output that would overwrite an input) exits with code 2 and one line on stderr; a
training run that diverges, or a disk that fills up while writing, exits 1 (one line, nothing
partial left behind). Results that scripts need are written as JSON/CSV, so nothing has to
parse the printed tables.

One module per command (:mod:`~ppgen.cli.fit`, :mod:`~ppgen.cli.evaluate`, ...; each has
``add_parser(sub)`` and ``run(args)``), what they share in :mod:`~ppgen.cli.runs` (run folders,
labels, whole-file writes), :mod:`~ppgen.cli.options` (shared options) and
:mod:`~ppgen.cli.checks` (argument checks).
"""

from __future__ import annotations

from ppgen.cli.app import _one_line, build_parser, main  # noqa: F401  (_one_line: tests)

__all__ = ["main", "build_parser"]
