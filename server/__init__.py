"""The gRPC server of user-service: configuration, wiring, the servicer and its error mapping."""
