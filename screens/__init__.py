"""The Textual UI of labtui. Only this package imports Textual."""
