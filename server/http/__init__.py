"""The HTTP listener (USER_SERVICE_HTTP_PORT): the JWKS and the OpenID discovery document for
token verifiers, the liveness and readiness probes, and the Prometheus metrics."""
