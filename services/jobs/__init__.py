"""The `jobs` hub service: notebook cells run as distributed, gang-scheduled jobs.

The service (app, handlers, spec, store, supervisor) knows jobs, their records
and their logs; how a job runs is a backend's business (`backends/`, chosen by
the config's `jobs.backend`). What a backend runs on the cluster lives with that
backend (`backends/ray/launcher.py`) or on the worker side
(`lavahub_jupyter.runtime`), never in the service process.
"""
