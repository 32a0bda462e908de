"""The `templates` hub service: the admin-managed image-template catalogue."""
