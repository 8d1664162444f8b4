"""The reference system of the workbook ("the shop"): its services, databases and links.

``architecture`` loads the shop's topology from YAML (``data/tour/``) and answers questions
about it (who calls whom, what a failure reaches). Chapter 0 tours it; the capstone runs it.
"""

from workbook.shop.architecture import Architecture, architecture_from_dict, load_architecture

__all__ = ["Architecture", "architecture_from_dict", "load_architecture"]
