"""The `jobs` hub service: notebook cells run as distributed, gang-scheduled jobs.

The service (app.py) knows jobs, their store and their logs; how a job runs
is a backend's business (backends/). The launcher and bootstrap modules are
what a backend runs on the cluster, not part of the service process.
"""
