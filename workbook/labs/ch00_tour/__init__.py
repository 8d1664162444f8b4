"""Chapter 0: a tour of the shop and the tail at scale."""
