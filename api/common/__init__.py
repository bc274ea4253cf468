"""What both services share at the HTTP edge: serving, request checks, errors, schemas,
metrics, settings. Each service's package builds its app from these."""
