"""HTTP, and the place where each service is put together from its parts and served."""
