"""Helpers shared by the tests and the benchmarks, imported like any module:

- `services`: the rule for servers the tests need (skip on a laptop, fail under CI), ports;
- `s3`: moto's S3 server in a process of its own;
- `world`: the production the API tests run against (two projects, every role, tokens);
- `ingest`: the ingest and flow tests' production, settings, delivery trees and helpers;
- `ingest_child`: run as `python -m tests.support.ingest_child` by the kill -9 and gc-race tests;
- `runs`: reading a flow run back from Prefect, invoking the CLI in-process.

Fixtures defined here are made visible by the conftest files that import them.
"""
