"""Reusable test harnesses that start real servers (SSH nodes in network namespaces, ...)."""
