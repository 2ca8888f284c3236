"""IMAP over TLS with Python's imaplib: implicit TLS, STARTTLS, and LOGINDISABLED.

Usage: imap_tls.py PLAIN_PORT TLS_PORT USER PASSWORD EXPECT_LOGINDISABLED(0|1)
The bridge's certificate is self-signed, so the client does not verify it.
"""

import imaplib
import ssl
import sys

HOST = "127.0.0.1"


def check(condition, message):
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        sys.exit(1)


def context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def main():
    plain, tls, user, password, disabled = sys.argv[1:6]
    imap = imaplib.IMAP4_SSL(HOST, int(tls), ssl_context=context())
    check("STARTTLS" not in imap.capabilities, "no STARTTLS on the implicit TLS port")
    check("AUTH=PLAIN" in imap.capabilities, "AUTH=PLAIN offered over TLS")
    typ, _ = imap.login(user, password)
    check(typ == "OK", "login over implicit TLS")
    typ, data = imap.select("INBOX", readonly=True)
    check(typ == "OK" and int(data[0]) > 0, "INBOX over implicit TLS")
    imap.logout()

    imap = imaplib.IMAP4(HOST, int(plain))
    check("STARTTLS" in imap.capabilities, f"STARTTLS offered: {imap.capabilities}")
    if disabled == "1":
        check("LOGINDISABLED" in imap.capabilities, "LOGINDISABLED before STARTTLS")
        try:
            imap.login(user, password)
            check(False, "login must be refused before STARTTLS")
        except imaplib.IMAP4.error as e:
            check("PRIVACYREQUIRED" in str(e), f"refusal names PRIVACYREQUIRED: {e}")
    imap.starttls(ssl_context=context())
    check("STARTTLS" not in imap.capabilities, "no STARTTLS after STARTTLS")
    check("LOGINDISABLED" not in imap.capabilities, "login allowed after STARTTLS")
    typ, _ = imap.login(user, password)
    check(typ == "OK", "login after STARTTLS")
    typ, data = imap.list()
    check(typ == "OK" and len(data) > 5, "LIST after STARTTLS")
    imap.logout()
    print("imap over TLS: implicit, STARTTLS" + (", LOGINDISABLED" if disabled == "1" else ""))


if __name__ == "__main__":
    main()
