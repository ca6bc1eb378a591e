"""stroute's benchmarks: `python -m benchmarks [--quick] [--json FILE]`.

Every figure is a ratio against a baseline measured in the same run on the
same kind of connection, because absolute times on a shared machine drift.
"""
