def normalize_email(email: str) -> str:
    """One spelling per mailbox, so `Ann@Example.com` cannot register twice."""
    return email.strip().lower()
