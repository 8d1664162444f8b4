"""The API gateway (chapter 6): configuration, routing, normalisation, proxying, pipeline.

``config`` (YAML validated by pydantic; errors name the file, the route and the field;
the source article's sample audited), ``normalize`` (the path every later step sees),
``routing`` (exact, then longest whole-segment prefix, then regex in order; the article's
``startswith`` matcher kept as ``naive_find_route``), ``headers`` (hop-by-hop removal,
forwarding headers appended, request ids, both fused in one pass per message), ``proxy`` (streamed forwarding), ``problem``
(RFC 9457 errors), ``accesslog`` (a JSON line per request) and ``app`` (``Gateway``: the
per-route pipeline, in ``PIPELINE`` order, built from ``workbook.auth``,
``workbook.ratelimit``, ``workbook.balancing`` and ``workbook.resilience``).
"""

from workbook.gateway.accesslog import AccessLog
from workbook.gateway.app import (IDEMPOTENT_METHODS, PIPELINE, RESOLVE_CACHE, Gateway, RouteLimiter, default_balancer_factory,
                                  default_limiter_factory)
from workbook.gateway.config import (HTTP_METHODS, AuthSettings, BreakerSettings, ConfigFinding, GatewaySettings,
                                     InstanceSettings, JWTSettings, RateLimitSettings, RedisSettings, RetrySettings,
                                     RouteSettings, ServiceSettings, audit_article_config, load_config, parse_config,
                                     read_yaml)
from workbook.gateway.errors import (BodyTooLarge, GatewayConfigError, GatewayError, IncompleteBody, PathRejected,
                                     UpstreamStatus, UpstreamTimeout, UpstreamUnavailable)
from workbook.gateway.headers import (HOP_BY_HOP, REQUEST_ID_HEADER, add_forwarding_headers, client_response_headers,
                                      connection_listed, end_to_end, new_request_id, request_id,
                                      upstream_request_headers, valid_request_id)
from workbook.gateway.normalize import ENCODED_SLASH_POLICIES, UNRESERVED, normalize_path, remove_dot_segments
from workbook.gateway.problem import PROBLEM_CONTENT_TYPE, problem_body, problem_response
from workbook.gateway.proxy import Forwarder, ProxyRequest, ProxyResponse
from workbook.gateway.routing import MATCH_KINDS, RouteMatch, RouteRule, Router, naive_find_route, segment_prefix

__all__ = [
    "AccessLog", "AuthSettings", "BodyTooLarge", "BreakerSettings", "ConfigFinding", "ENCODED_SLASH_POLICIES", "Forwarder",
    "Gateway", "GatewayConfigError", "GatewayError", "GatewaySettings", "HOP_BY_HOP", "HTTP_METHODS",
    "IDEMPOTENT_METHODS", "IncompleteBody", "InstanceSettings", "JWTSettings", "MATCH_KINDS", "PIPELINE", "PROBLEM_CONTENT_TYPE",
    "PathRejected", "ProxyRequest", "ProxyResponse", "REQUEST_ID_HEADER", "RESOLVE_CACHE", "RateLimitSettings", "RedisSettings", "RetrySettings", "RouteLimiter",
    "RouteMatch", "RouteRule", "RouteSettings", "Router", "ServiceSettings", "UNRESERVED", "UpstreamStatus",
    "UpstreamTimeout", "UpstreamUnavailable", "add_forwarding_headers", "audit_article_config", "client_response_headers",
    "connection_listed",
    "default_balancer_factory", "default_limiter_factory", "end_to_end", "load_config", "naive_find_route",
    "normalize_path", "parse_config", "problem_body", "problem_response", "read_yaml", "remove_dot_segments",
    "new_request_id", "request_id", "segment_prefix", "upstream_request_headers", "valid_request_id",
]
