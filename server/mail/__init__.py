"""Mail to users: security messages (password reset, lock notice) built by one builder, and the
two notifiers that send them (SMTP, or the development outbox folder)."""
