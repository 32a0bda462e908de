"""lavahub itself: the platform's config, database and command line."""
