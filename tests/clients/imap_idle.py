"""IDLE with Python's imaplib: a message delivered to the mailbox in Microsoft 365 (the
emulator's deliver endpoint) reaches a client idling on INBOX as an untagged EXISTS.

Usage: imap_idle.py IMAP_PORT GRAPH_PORT USER PASSWORD MAILBOX_UPN
imaplib before Python 3.14 has no IDLE method, so IDLE and DONE go through its
low-level send/readline, as clients built on it do.
"""

import imaplib
import socket
import sys
import time
import urllib.request

HOST = "127.0.0.1"
MESSAGE = (
    b"From: Bob Example <bob@example.com>\r\n"
    b"To: sales@contoso.test\r\n"
    b"Subject: Wakes the idler\r\n"
    b"Message-ID: <idle-wake@example.com>\r\n"
    b"Date: Mon, 2 Mar 2026 11:00:00 +0000\r\n"
    b"\r\n"
    b"New mail while idling.\r\n"
)


def check(condition, message):
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        sys.exit(1)


def deliver(graph_port, upn):
    request = urllib.request.Request(
        f"http://{HOST}:{graph_port}/_emulator/mailboxes/{upn}/deliver?folder=inbox",
        data=MESSAGE,
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        check(response.status == 201, f"deliver answered {response.status}")


def main():
    imap_port, graph_port, user, password, upn = sys.argv[1:6]
    imap = imaplib.IMAP4(HOST, int(imap_port))
    check("IDLE" in imap.capabilities, f"IDLE advertised: {imap.capabilities}")
    imap.login(user, password)
    typ, data = imap.select("INBOX")
    check(typ == "OK", "SELECT INBOX")
    before = int(data[0])

    tag = imap._new_tag()
    imap.send(tag + b" IDLE\r\n")
    line = imap.readline()
    check(line.startswith(b"+"), f"continuation for IDLE: {line!r}")

    deliver(graph_port, upn)
    started = time.monotonic()
    imap.sock.settimeout(60)
    exists = None
    try:
        while exists is None:
            line = imap.readline()
            check(line, "connection open during IDLE")
            parts = line.split()
            if len(parts) >= 3 and parts[0] == b"*" and parts[2].upper() == b"EXISTS":
                exists = int(parts[1])
    except socket.timeout:
        check(False, "no EXISTS within 60 s of the delivery")
    waited = time.monotonic() - started
    check(exists == before + 1, f"EXISTS {exists} after {before}")

    imap.send(b"DONE\r\n")
    while True:
        line = imap.readline()
        check(line, "connection open after DONE")
        if line.startswith(tag):
            check(line.split()[1] == b"OK", f"IDLE completes OK: {line!r}")
            break
    imap.sock.settimeout(None)

    typ, data = imap.fetch(str(exists), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    check(typ == "OK" and b"Wakes the idler" in data[0][1], f"the new message: {data!r}")
    imap.logout()
    print(f"IDLE woke {waited:.1f} s after the delivery (EXISTS {before} -> {exists})")


main()
