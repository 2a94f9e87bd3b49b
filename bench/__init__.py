"""Benchmarks of a running all-in-one through its REST API: `python -m bench --help`.

Never part of the test suite (pytest collects only tests/, and nothing here is named test_*).
"""
