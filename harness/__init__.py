"""Real processes for the integration tests and the benchmarks: a private redis-server,
gunicorn as the Procfile's web line, a Celery worker, and polling until they have caught up.

Not part of the service (not installed with it): ``tests/`` and ``bench/`` import it from
the repository root.
"""
