"""Python smtplib against the bridge: STARTTLS on the submission port, implicit TLS on the
second port, AUTH LOGIN and PLAIN, BDAT-free send_message. Exits non-zero on any failure."""
import smtplib
import ssl
import sys
from email.message import EmailMessage

starttls_port, tls_port, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE


def message(subject):
    m = EmailMessage()
    m["From"] = "sales@contoso.test"
    m["To"] = "sales@contoso.test"
    m["Subject"] = subject
    m.set_content("Grüße aus Python\n")
    m.add_attachment(b"%PDF-1.4 python\n", maintype="application", subtype="pdf", filename="p.pdf")
    return m


with smtplib.SMTP("127.0.0.1", starttls_port) as s:
    s.ehlo()
    assert s.has_extn("starttls"), s.esmtp_features
    s.starttls(context=context)
    s.ehlo()
    assert s.has_extn("auth"), s.esmtp_features
    s.login(user, password)
    s.send_message(message("python starttls"))
    print("sent over STARTTLS")

with smtplib.SMTP_SSL("127.0.0.1", tls_port, context=context) as s:
    s.login(f"sales@contoso.test*{user}", password)
    s.send_message(message("python implicit tls"))
    print("sent over implicit TLS")
