"""Chapter 5: service discovery, health checking, failure detection and load balancing."""
