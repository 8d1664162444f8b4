"""The microservice patterns workbook.

One subpackage per chapter (``tour``, ``decomposition``, ``sync``, ``messaging`` ...) on
top of a small shared core (``workbook.core``): an injectable clock, a virtual-time
asyncio event loop, a simulated network, and real-time helpers for aiohttp servers.
Plotting and widget code lives in ``workbook.viz`` only; pattern modules never import it.
"""

__version__ = "0.1.0"
