"""Certificates for the TLS tests, made at test time with the openssl command.

make_ca_and_cert(dir) -> dict with paths: ca (CA cert), cert/key (server, signed by
the CA, for 127.0.0.1 and localhost), other_ca (a CA that signed nothing here: a
client trusting only it must refuse the server).
"""

import os
import subprocess


def _run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _ca(d, name):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-out", crt, "-days", "2", "-subj", "/CN=%s" % name)
    return key, crt


def make_ca_and_cert(d):
    ca_key, ca = _ca(d, "warren-test-ca")
    _, other_ca = _ca(d, "other-ca")
    key, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.pem"))
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=localhost")
    _run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    return {"ca": ca, "cert": crt, "key": key, "other_ca": other_ca}
