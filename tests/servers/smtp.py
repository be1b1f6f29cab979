#!/usr/bin/env python3
"""An independent SMTP server for the tests: aiosmtpd (PyPI), optionally with STARTTLS
required and AUTH (PLAIN/LOGIN) required after it. Every message is parsed with Python's
email package and appended as one JSON line to OUT: envelope, headers, the MIME parts'
content types and the text and HTML bodies. Prints "ready" once listening. Loopback only."""
import argparse
import email
import email.policy
import json
import ssl
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--out", required=True)
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--user")
p.add_argument("--password")
a = p.parse_args()


class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        parts = [part.get_content_type() for part in msg.walk()]
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        with open(a.out, "a") as f:
            f.write(json.dumps({
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "subject": str(msg["subject"]),
                "to": str(msg["to"]),
                "from": str(msg["from"]),
                "message_id": str(msg["message-id"]),
                "in_reply_to": str(msg["in-reply-to"]) if msg["in-reply-to"] else None,
                "parts": parts,
                "text": text.get_content() if text else None,
                "html": html.get_content() if html else None,
                "authenticated": session.authenticated,
                "tls": session.ssl is not None,
            }) + "\n")
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login.decode() == a.user and auth_data.password.decode() == a.password
    return AuthResult(success=ok)


kwargs = {}
if a.cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    kwargs.update(tls_context=ctx, require_starttls=True)
if a.user:
    kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
c = Controller(Handler(), hostname="127.0.0.1", port=a.port, **kwargs)
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
