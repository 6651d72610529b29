"""Feature drift and model decay against the champion's training window."""
