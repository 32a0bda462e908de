"""What a lavahub workspace is: templates, projects, volumes, resources and the spawners.

The modules here are small and mostly pure so that the local and the Kubernetes
backends (and the services, which may import this package) share one set of rules.
"""
