"""Hub-managed services, the `lavahub` command line, and what starts the platform."""
