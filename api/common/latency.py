"""The latency histogram buckets every service uses (seconds); a module of its own so the
read replica can count with them without importing prometheus_client."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0)
