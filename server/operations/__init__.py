"""Running the service: health (the readiness loop and the health command), metrics
(Prometheus), and logging configuration."""
