"""Chapter 6: the API gateway: routing, proxying, JWT and rate limiting.

``gateway_runs`` (the configuration audited, route-matcher and normalisation rows, the JWT
playground, the live tour, headers, problem+json errors and a bounded fuzz against the demo
stack), ``ratelimit_runs`` (the crafted timeline per algorithm, the panel's data, the
article's limiter at a window edge and under concurrency, fail modes), ``figures`` (plotly
figures, the route-matcher tester and the rate-limit panel) and ``exercise`` (the route
table checker).
"""
