"""Mail to users about their account's security (reset, lock notice, verification, email change
and its notice), written from templates (templates.py, compose.py), and the two notifiers that
send it (SMTP, or the development outbox folder)."""
