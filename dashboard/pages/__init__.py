"""One module per page: `PATH`, `TITLE`, `layout(data)` and `register(app, data)` (its callbacks)."""
