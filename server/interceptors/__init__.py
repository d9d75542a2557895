"""The interceptors every call passes through, outermost first: tracing (a span per call; only
when tracing is on), observed_calls (request id, access log, metrics), draining (refuses calls
at shutdown), caller_auth (who may call what), errors (exceptions to statuses, deadlines);
wrapping builds each wrapped handler once."""
