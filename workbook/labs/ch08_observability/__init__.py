"""Chapter 8: observability: metrics checked against Prometheus, alerts that mean what they say, SLO burn rates."""
