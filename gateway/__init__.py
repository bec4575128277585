"""The front door: routes public paths to the services, owns identity, serves the merged OpenAPI."""
