"""On-demand benchmarks (never timed unit tests). ``python -m benchmarks`` runs them all."""
