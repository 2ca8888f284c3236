"""A QRESYNC client written with Python's standard imaplib: it remembers UIDVALIDITY and
HIGHESTMODSEQ, goes away while another client changes a flag and expunges a message, comes
back with SELECT (QRESYNC (uidvalidity modseq)) and must get exactly one VANISHED (EARLIER)
and one changed FETCH.

Usage: imaplib_qresync.py IMAP_PORT USER PASSWORD
Exits non-zero (with a message) on the first thing that is wrong.
"""

import imaplib
import re
import sys

HOST = "127.0.0.1"
FOLDER = "PyResync"


def check(condition, message):
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        sys.exit(1)


def ok(result, what):
    typ, data = result
    check(typ == "OK", f"{what} answered {typ} {data}")
    return data


def connect(port, user, password):
    imap = imaplib.IMAP4(HOST, port)
    ok(imap.login(user, password), "LOGIN")
    return imap


def main():
    port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]

    first = connect(port, user, password)
    check("QRESYNC" in first.capabilities, f"QRESYNC advertised: {first.capabilities}")
    check("CONDSTORE" in first.capabilities, "CONDSTORE advertised")
    ok(first.create(FOLDER), "CREATE")
    for i in range(4):
        body = f"From: a@example.test\r\nSubject: resync {i}\r\n\r\nBody {i}\r\n"
        ok(first.append(FOLDER, None, None, body.encode()), "APPEND")
    ok(first.enable("QRESYNC"), "ENABLE QRESYNC")
    ok(first.select(FOLDER), "SELECT")
    validity = int(first.response("UIDVALIDITY")[1][0])
    modseq = int(first.response("HIGHESTMODSEQ")[1][0])
    data = ok(first.uid("FETCH", "1:*", "(UID MODSEQ)"), "UID FETCH")
    uids = [int(re.search(rb"UID (\d+)", line).group(1)) for line in data if line]
    check(len(uids) == 4, f"four messages: {data}")
    first.logout()

    # Another client, while the first is offline.
    other = connect(port, user, password)
    ok(other.select(FOLDER), "SELECT (other)")
    ok(other.uid("STORE", str(uids[1]), "+FLAGS", "(\\Flagged)"), "STORE \\Flagged")
    ok(other.uid("STORE", str(uids[2]), "+FLAGS", "(\\Deleted)"), "STORE \\Deleted")
    ok(other.expunge(), "EXPUNGE")
    other.logout()

    back = connect(port, user, password)
    ok(back.enable("QRESYNC"), "ENABLE QRESYNC (back)")
    typ, data = back._simple_command(
        "SELECT", f'"{FOLDER}" (QRESYNC ({validity} {modseq}))'
    )
    check(typ == "OK", f"SELECT with QRESYNC answered {typ} {data}")
    vanished = back.untagged_responses.get("VANISHED", [])
    check(
        vanished == [f"(EARLIER) {uids[2]}".encode()],
        f"exactly the expunged UID vanished: {vanished}",
    )
    fetches = [f for f in back.untagged_responses.get("FETCH", []) if f]
    check(len(fetches) == 1, f"exactly one changed message: {fetches}")
    changed = fetches[0]
    check(f"UID {uids[1]}".encode() in changed, f"the changed message: {changed}")
    check(b"\\Flagged" in changed, f"with its new flag: {changed}")
    new_modseq = int(re.search(rb"MODSEQ \((\d+)\)", changed).group(1))
    check(new_modseq > modseq, f"a newer MODSEQ: {changed}")
    highest = int(back.untagged_responses["HIGHESTMODSEQ"][0])
    check(highest >= new_modseq, f"HIGHESTMODSEQ {highest} covers {new_modseq}")
    back.logout()
    print(f"QRESYNC resync: VANISHED {uids[2]}, changed {uids[1]}, MODSEQ {modseq} -> {highest}")


if __name__ == "__main__":
    main()
