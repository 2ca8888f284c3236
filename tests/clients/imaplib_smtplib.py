"""Drives a running bridge with Python's standard imaplib and smtplib, as a mail client would.

Usage: imaplib_smtplib.py IMAP_PORT SMTP_PORT USER PASSWORD
Exits non-zero (with a message) on the first thing that is wrong.
"""

import email
import imaplib
import smtplib
import sys
import time
import uuid
from email.message import EmailMessage

HOST = "127.0.0.1"


def check(condition, message):
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        sys.exit(1)


def list_folders(imap):
    typ, data = imap.list()
    check(typ == "OK", f"LIST answered {typ}")
    names = []
    for line in data:
        text = line.decode()
        # (attributes) "/" name
        name = text.split(' "/" ', 1)[1]
        names.append((text, name.strip('"')))
    return names


def fetch_inbox(imap):
    typ, data = imap.select("INBOX", readonly=True)
    check(typ == "OK", f"SELECT INBOX answered {typ}")
    count = int(data[0])
    check(count > 0, "INBOX has messages")
    typ, data = imap.fetch("1:*", "(RFC822.SIZE BODY.PEEK[])")
    check(typ == "OK", f"FETCH answered {typ}")
    fetched = 0
    for item in data:
        if not isinstance(item, tuple):
            continue
        header, body = item
        size = int(header.decode().split("RFC822.SIZE ")[1].split(" ")[0])
        check(len(body) == size, f"len(BODY[]) {len(body)} != RFC822.SIZE {size}")
        email.message_from_bytes(body)
        fetched += 1
    check(fetched == count, f"fetched {fetched} of {count} messages")
    return count


def send_mail(smtp_port, user, password, marker):
    message = EmailMessage()
    message["From"] = "Contoso Sales <sales@contoso.test>"
    message["To"] = "Anna Example <anna@example.test>, ben@example.test"
    message["Subject"] = f"Quarterly figures {marker}"
    message["Message-ID"] = f"<{marker}@contoso.test>"
    message.set_content("Hello Anna, hello Ben,\n\nthe figures are attached in spirit.\n")
    with smtplib.SMTP(HOST, smtp_port, timeout=30) as smtp:
        smtp.ehlo("client.example.test")
        smtp.login(user, password)
        refused = smtp.send_message(message)
        check(refused == {}, f"recipients refused: {refused}")


def find_in_sent(imap, sent_name, marker):
    deadline = time.time() + 30
    while time.time() < deadline:
        typ, _ = imap.select(f'"{sent_name}"', readonly=True)
        check(typ == "OK", f"SELECT {sent_name} answered {typ}")
        typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        if typ == "OK" and any(
            isinstance(item, tuple) and marker.encode() in item[1] for item in data
        ):
            return True
        time.sleep(0.5)
    return False


def main():
    imap_port, smtp_port, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    imap = imaplib.IMAP4(HOST, imap_port)
    typ, _ = imap.login(user, password)
    check(typ == "OK", "login")
    folders = list_folders(imap)
    names = [name for _, name in folders]
    for expected in ["INBOX", "Sent Items", "Drafts", "Deleted Items", "Archive", "Projects/2026"]:
        check(expected in names, f"{expected} listed in {names}")
    sent = [name for text, name in folders if "\\Sent" in text and not name.startswith("Shared/")]
    check(len(sent) == 1, f"one \\Sent folder: {folders}")
    count = fetch_inbox(imap)
    marker = uuid.uuid4().hex[:12]
    send_mail(smtp_port, user, password, marker)
    check(find_in_sent(imap, sent[0], marker), "the sent message shows up in Sent")
    imap.logout()
    print(f"imaplib/smtplib: {len(folders)} folders, {count} INBOX messages, sent {marker}")


if __name__ == "__main__":
    main()
