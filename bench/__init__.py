"""Benchmarks of Cirrus through its REST API, as the all-in-one and as separate processes on
PostgreSQL + RabbitMQ: `python -m bench --help`.

Never part of the test suite (pytest collects only tests/, and nothing here is named test_*).
"""
