"""A byte-level AMQP 0-9-1 client for tests that real clients cannot express:
broken frames, protocol violations, exact reply codes, heartbeat timing.

  RawConn(port)            TCP connection to 127.0.0.1:port
    .handshake(...)        header, start-ok (PLAIN), tune-ok, open; returns tune args
    .send_method(ch, cls, mid, args)   one method frame
    .send_frame(type, ch, payload)     any frame
    .recv_frame(timeout)   (type, channel, payload) or None on EOF
    .expect_method(cls, mid)           next method frame, asserted; returns its args bytes
    .expect_close(code)    next frame is connection.close with that reply code

Only the fields these tests need are encoded; the server's encoder is
rabbitmq-c, checked by real clients elsewhere.
"""

import socket
import struct
import time

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = b"\xce"
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">B", len(b)) + b


def longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


def table(entries=b""):
    return struct.pack(">I", len(entries)) + entries


class RawConn:
    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, ftype, ch, payload):
        self.send(struct.pack(">BHI", ftype, ch, len(payload)) + payload + FRAME_END)

    def send_method(self, ch, cls, mid, args=b""):
        self.send_frame(FRAME_METHOD, ch, struct.pack(">HH", cls, mid) + args)

    def _fill(self, n, timeout):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no data from the server within %.1f s" % timeout)
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except ConnectionResetError:
                d = b""
            if not d:
                return False
            self.buf += d
        return True

    def recv_bytes(self, n, timeout=5.0):
        if not self._fill(n, timeout):
            return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout=5.0):
        """(type, channel, payload), or None when the server closed the socket."""
        if not self._fill(7, timeout):
            return None
        ftype, ch, size = struct.unpack(">BHI", self.buf[:7])
        if not self._fill(7 + size + 1, timeout):
            return None
        payload = self.buf[7:7 + size]
        assert self.buf[7 + size:8 + size] == FRAME_END, "server frame without frame-end"
        self.buf = self.buf[8 + size:]
        return ftype, ch, payload

    def recv_method(self, timeout=5.0):
        """Next method frame as (channel, class, method, args), skipping heartbeats."""
        while True:
            f = self.recv_frame(timeout)
            if f is None:
                return None
            ftype, ch, payload = f
            if ftype == FRAME_HEARTBEAT:
                continue
            assert ftype == FRAME_METHOD, "expected a method frame, got type %d" % ftype
            cls, mid = struct.unpack(">HH", payload[:4])
            return ch, cls, mid, payload[4:]

    def expect_method(self, cls, mid, ch=None, timeout=5.0):
        m = self.recv_method(timeout)
        assert m is not None, "server closed the socket, expected %d.%d" % (cls, mid)
        assert (m[1], m[2]) == (cls, mid), "got method %d.%d, expected %d.%d (%r)" % (
            m[1], m[2], cls, mid, m[3][:80])
        if ch is not None:
            assert m[0] == ch, "method on channel %d, expected %d" % (m[0], ch)
        return m[3]

    def expect_close(self, code, timeout=5.0):
        """Next method is connection.close with `code`; answers close-ok. Returns the text."""
        args = self.expect_method(10, 50, ch=0, timeout=timeout)
        got, tlen = struct.unpack(">HB", args[:3])
        text = args[3:3 + tlen].decode()
        assert got == code, "connection.close %d (%s), expected %d" % (got, text, code)
        self.send_method(0, 10, 51)
        return text

    def expect_eof(self, timeout=5.0):
        """Reads (and drops) until the server closes; returns the seconds it took."""
        t0 = time.monotonic()
        while True:
            f = self.recv_frame(timeout)
            if f is None:
                return time.monotonic() - t0

    def handshake(self, user="guest", password="guest", vhost="/", frame_max=131072,
                  channel_max=0, heartbeat=0, auth_failure_close=True):
        self.send(PROTOCOL_HEADER)
        self.expect_method(10, 10, ch=0)
        caps = shortstr("authentication_failure_close") + b"t" + (
            b"\x01" if auth_failure_close else b"\x00")
        props = shortstr("capabilities") + b"F" + table(caps)
        resp = b"\x00" + user.encode() + b"\x00" + password.encode()
        self.send_method(0, 10, 11, table(props) + shortstr("PLAIN") + longstr(resp) +
                         shortstr("en_US"))
        tune = self.expect_method(10, 30, ch=0)
        proposed = struct.unpack(">HIH", tune[:8])
        self.send_method(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, heartbeat))
        self.send_method(0, 10, 40, shortstr(vhost) + shortstr("") + b"\x00")
        self.expect_method(10, 41, ch=0)
        return proposed

    def open_channel(self, ch):
        self.send_method(ch, 20, 10, shortstr(""))
        self.expect_method(20, 11, ch=ch)
