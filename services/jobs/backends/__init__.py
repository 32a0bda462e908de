"""Job backends, one module each; the service only knows `backends.base.Backend`."""
