"""Benchmarks for the onboarding engine (issue 6): ``make bench`` or ``python -m bench``.

Not part of the test suite. Each measurement runs in a fresh subprocess (``bench.worker``) so
that peak memory (RSS) is the operation's own; the orchestrator (``bench.run``) prints one
table and writes ``bench/RESULTS.md``. Large databases are generated with plain SQL shaped
exactly like the engine's rows (``bench.data``) and cached under ``bench/.cache/``.
"""
