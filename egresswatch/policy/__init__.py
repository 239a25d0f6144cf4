"""Policy: what may talk out, judged flow by flow; what breaks it becomes an alert."""
