"""End to end: a real Prometheus scrapes the demo and dbpulse; every dashboard and rule query answers."""
