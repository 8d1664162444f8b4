"""Chapter 1: from business capabilities to service boundaries."""
