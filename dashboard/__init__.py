"""The analysts' dashboard: a Plotly Dash app on the core alone (docs/dashboard.md)."""
