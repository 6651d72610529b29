"""The daily insights report: the day's strongest and weakest signals with their intervals and sectors, the sector
view, model health and the alerts fired, as an HTML email (report.py builds it, template.py renders it)."""
