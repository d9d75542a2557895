"""The service's cryptography: password hashing (argon2id), access-token signing (Ed25519 JWTs
and their JWKS), API-key digests and TLS credentials."""
