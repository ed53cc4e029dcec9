#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""An SMTP sink for tests: accepts every message on 127.0.0.1:PORT and stores each one as
DIR/<n>.eml (written under a hidden name, then renamed), preceded by X-Envelope-From and
X-Envelope-To lines. It offers no STARTTLS and no AUTH. Usage: smtp_sink.py PORT DIR"""

import itertools
import os
import socketserver
import sys
import threading

COUNTER = itertools.count(1)
LOCK = threading.Lock()


def store(folder, sender, recipients, data):
    with LOCK:
        n = next(COUNTER)
    tmp = os.path.join(folder, ".%06d.tmp" % n)
    with open(tmp, "wb") as f:
        f.write(b"X-Envelope-From: " + sender + b"\r\n")
        for r in recipients:
            f.write(b"X-Envelope-To: " + r + b"\r\n")
        f.write(data)
    os.rename(tmp, os.path.join(folder, "%06d.eml" % n))


class Handler(socketserver.StreamRequestHandler):
    def say(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def data(self):
        lines = []
        while True:
            line = self.rfile.readline()
            if not line or line == b".\r\n":
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b"..") else line)

    def handle(self):
        sender, recipients = b"", []
        self.say("220 sink ESMTP")
        for line in iter(self.rfile.readline, b""):
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.say("250-sink\r\n250 8BITMIME")
            elif verb in (b"HELO", b"NOOP"):
                self.say("250 OK")
            elif verb == b"MAIL":
                sender, recipients = line[10:].strip(), []
                self.say("250 OK")
            elif verb == b"RCPT":
                recipients.append(line[8:].strip())
                self.say("250 OK")
            elif verb == b"DATA":
                self.say("354 go ahead")
                store(self.server.folder, sender, recipients, self.data())
                self.say("250 OK stored")
            elif verb == b"RSET":
                sender, recipients = b"", []
                self.say("250 OK")
            elif verb == b"QUIT":
                self.say("221 bye")
                return
            else:
                self.say("502 not implemented")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    server = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    server.folder = sys.argv[2]
    os.makedirs(server.folder, exist_ok=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
