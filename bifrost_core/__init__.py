"""Bifrost's domain: production model, services, storage, events and configuration.

This package imports neither Prefect nor FastAPI: flows, tasks, the API and the
CLI sit on top of it.
"""
