import unicodedata


def normalize_email(email: str) -> str:
    """One spelling per mailbox: the identity every lookup, sign-up and throttle key uses.

    Compatibility forms are folded (NFKC: a fullwidth k, U+FF4B, is `k`) and so is case
    (`casefold`: `Ann`, `ANN` and `ann` are one account), then NFKC again, since folding
    case can undo it. Accents stay: `kïm@example.com` and `kim@example.com` are two
    addresses, and the column compares exactly (a binary collation on MySQL), so no
    database merges them.
    """
    folded = unicodedata.normalize("NFKC", email).casefold()
    return unicodedata.normalize("NFKC", folded).strip()


def is_email_or_its_local_part(password: str, email: str) -> bool:
    """Whether the password is the address, or its part before the @, in any case."""
    return password.casefold() in {email.casefold(), email.rpartition("@")[0].casefold()}
