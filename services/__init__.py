"""Hub-managed services: `jobs` (cells as distributed jobs) and `templates` (the catalogue API)."""
