"""Chapter 2: synchronous communication and resilience."""
