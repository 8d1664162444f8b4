"""Calls between services over real transports: HTTP (aiohttp) and gRPC, and the simulated network.

``context`` (correlation id, user and tenant carried across hops), ``client``
(``ServiceClient``: aiohttp calls through a resilience pipeline, errors named),
``demo_service`` (an aiohttp service with switchable faults that honours deadlines),
``grpc_demo`` with ``inventory.proto`` and its generated modules (the same operation over
gRPC), ``simcall`` (the same call over ``workbook.core.simnet`` in virtual time). The
aiohttp and gRPC modules are imported on use, so importing this package stays cheap.
"""

from workbook.transport.context import RequestContext, context_scope, current_context

__all__ = ["RequestContext", "context_scope", "current_context"]
