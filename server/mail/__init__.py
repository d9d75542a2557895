"""Mail to users: the password-reset message, and the two notifiers that send it (SMTP, or the
development outbox folder)."""
