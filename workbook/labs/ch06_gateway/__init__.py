"""Chapter 6: the API gateway: routing, proxying, JWT and rate limiting."""
