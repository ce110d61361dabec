"""Authentication and authorisation policy: password hashing, sessions, CSRF, login limits, roles."""
