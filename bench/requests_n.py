#!/usr/bin/python3
"""Sends exactly N keep-alive requests of one kind, spread over C connections,
each connection waiting for its answer before sending the next: a fixed amount
of work, for bench/instr.sh to count instructions over (wrk runs for a time,
not a count).

    requests_n.py PORT N CONNS post|post10|pop

post and post10 are the shared wrk scripts' documents (1 or 10 messages with
the 100-byte body of ../shared/bench/rest/common.lua), pop is
DELETE ?pop=10. Queue "bench", project "bench". Prints the number of 2xx
answers; exits 1 if any answer was not 2xx.
"""
import selectors
import socket
import sys

CLIENT = "5f3a0d4e-8c1b-4b7a-9f2e-3d6c1a0b9e77"
BODY100 = '{"event":"bench","seq":12345,"payload":"' + "x" * 58 + '"}'


def request(kind, port):
    head = ("Host: 127.0.0.1:%d\r\nClient-ID: %s\r\nX-Project-Id: bench\r\n"
            "Accept: application/json\r\n" % (port, CLIENT))
    if kind == "pop":
        return ("DELETE /v2/queues/bench/messages?pop=10 HTTP/1.1\r\n" + head + "\r\n").encode()
    n = {"post": 1, "post10": 10}[kind]
    doc = '{"messages":[' + ",".join(['{"ttl":3600,"body":%s}' % BODY100] * n) + "]}"
    return ("POST /v2/queues/bench/messages HTTP/1.1\r\n" + head +
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(doc), doc)).encode()


def answer_end(buf):
    """Bytes of the first whole answer in buf, its status; (None, None) if partial."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, None
    lines = buf[:end].split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    total = end + 4 + length
    if len(buf) < total:
        return None, None
    return total, int(lines[0].split()[1])


def main():
    port, n, conns, kind = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    req = request(kind, port)
    sel = selectors.DefaultSelector()
    bufs = {}
    sent = done = bad = 0
    for _ in range(min(conns, n)):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(req)
        sent += 1
        bufs[s] = b""
        sel.register(s, selectors.EVENT_READ)
    while done < n:
        for key, _ in sel.select():
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                sys.exit("requests_n.py: the server closed a connection")
            bufs[s] += data
            while True:
                total, status = answer_end(bufs[s])
                if total is None:
                    break
                bufs[s] = bufs[s][total:]
                done += 1
                bad += not 200 <= status < 300
                if sent < n:
                    s.sendall(req)
                    sent += 1
    print(done - bad)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
