"""The platform around the workspaces: its config, the hub's config, start-up and the `lavahub` command."""
