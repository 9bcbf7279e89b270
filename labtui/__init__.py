"""labtui: the engine. Never imports Textual or the `screens` package."""

__version__ = "0.1.0"
