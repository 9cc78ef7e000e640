"""Faults (issue 4, item 6): a full disk, a foreign or damaged data dir.

Full disk: the data dir is a small tmpfs the test mounts (root only; skipped
with the reason otherwise). Filling it makes persistent publishes fail with a
clear error (AMQP: nack in confirm mode; REST: 507 with a JSON body) and
freeing it lets them through again, with nothing confirmed lost. Both ways to
get there: free space under --disk-free-limit (the broker refuses before the
disk is full) and a really full disk with no limit (RocksDB's write fails
with ENOSPC and the store reopens once space is back).

Damaged or foreign data dirs: warrend exits non-zero with a line on stderr
that says it refuses the store, and leaves every file as it was (RocksDB's
own info LOG aside). The second-broker-on-one-data-dir case is in
../process/test_process.py.
"""

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import textwrap

import pika
import pytest

import durlib as dl
import warren as wl

PERSISTENT = pika.BasicProperties(delivery_mode=2)
MiB = 1 << 20


@contextlib.contextmanager
def tmpfs(size_mib):
    d = tempfile.mkdtemp(prefix="warren-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mib, "tmpfs", d],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(d)
        pytest.skip("cannot mount a tmpfs for the full-disk test (needs root): "
                    + (r.stderr.strip() or "mount failed"))
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", d], check=False)
        os.rmdir(d)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_to(path, leave):
    """A filler file that leaves about `leave` bytes free (0: write until ENOSPC)."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb") as f:
        if leave:
            f.write(b"\0" * max(0, free_bytes(path) - leave))
        else:
            chunk = b"\0" * MiB
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError:
                pass
    return filler


def publish_ok(ch, body):
    try:
        ch.basic_publish("", "full-q", body, PERSISTENT)
        return True
    except pika.exceptions.NackError:
        return False


def rest_post(api, body):
    return api.post("/v2/queues/full-r/messages", json={"messages": [{"body": body}]})


def check_full_disk(limit, leave):
    with tmpfs(64) as mnt:
        w = dl.durable_warren(["--disk-free-limit", str(limit)], data_dir=mnt)
        conn = None
        try:
            w.start()
            conn = dl.amqp_connect(w.amqp_port)
            ch = conn.channel()
            ch.confirm_delivery()
            ch.queue_declare("full-q", durable=True)
            api = wl.Api(w.url)
            api.create_queue("full-r", {"_durable": True})
            confirmed = [b"before-%d" % i for i in range(10)]
            for b in confirmed:
                assert publish_ok(ch, b)
            posted = [{"n": i} for i in range(3)]
            for b in posted:
                assert rest_post(api, b).status_code == 201

            filler = fill_to(mnt, leave)
            # Refused with a clear error: a nack over AMQP, 507 + JSON over REST.
            dl.wait_for(lambda: not publish_ok(ch, b"refused"), 30,
                        "a nack for a persistent publish on a full disk\n" + w.log_tail())
            last = []

            def post_refused():
                last[:] = [rest_post(api, "refused")]
                return last[0].status_code == 507

            dl.wait_for(post_refused, 30, "507 for a REST post on a full disk")
            r = last[0]
            doc = wl.assert_error(r, 507)  # a JSON body with title/description
            assert "storage" in (doc.get("description", "") + doc.get("title", "")).lower(), doc
            assert conn.is_open, "the connection was closed instead of the publish nacked"

            # Space comes back: publishing resumes by itself.
            os.unlink(filler)
            dl.wait_for(lambda: publish_ok(ch, b"after"), 30,
                        "publishing to resume once space is back\n" + w.log_tail())
            confirmed.append(b"after")
            r = rest_post(api, {"n": 99})
            assert r.status_code == 201, wl.describe(r)
            posted.append({"n": 99})
            conn.close()

            # Nothing confirmed was lost, even across a crash.
            w.kill()
            w.start()
            conn = dl.amqp_connect(w.amqp_port)
            ch = conn.channel()
            got = []
            while True:
                m, _, body = ch.basic_get("full-q", auto_ack=True)
                if m is None:
                    break
                got.append(body)
            assert [b for b in got if b != b"refused"] == confirmed, got
            c = api.claim("full-r", limit=20)
            assert c.status_code == 201, wl.describe(c)
            bodies = [m["body"] for m in c.json()["messages"] if m["body"] != "refused"]
            assert bodies == posted
            conn.close()
            assert w.stop() == 0, w.log_tail()
        finally:
            dl.close_quietly(conn)
            w.kill()
            w.cleanup()


def test_disk_free_limit_refuses_persistent_writes_and_resumes():
    if not dl.has_flag("disk-free-limit"):
        pytest.skip("warrend has no --disk-free-limit yet")
    check_full_disk(limit=24 * MiB, leave=8 * MiB)


def test_a_really_full_disk_refuses_persistent_writes_and_resumes():
    if not dl.has_flag("disk-free-limit"):
        pytest.skip("warrend has no --disk-free-limit yet (needed to turn the limit off)")
    check_full_disk(limit=0, leave=0)


def test_connection_blocked_while_the_disk_is_full():
    """RabbitMQ's way to say "stop publishing": connection.blocked while the
    disk is full, connection.unblocked once space is back (when advertised)."""
    with tmpfs(64) as mnt:
        w = dl.durable_warren(["--disk-free-limit", str(24 * MiB)], data_dir=mnt)
        try:
            w.start()
            blocked, unblocked = [], []
            conn = dl.amqp_connect(w.amqp_port)
            caps = conn._impl.server_capabilities or {}
            if not caps.get("connection.blocked"):
                pytest.xfail("gap: warrend does not advertise connection.blocked (publishes on "
                             "a full store are nacked, the connection is not blocked)")
            conn.add_on_connection_blocked_callback(lambda *a: blocked.append(a))
            conn.add_on_connection_unblocked_callback(lambda *a: unblocked.append(a))
            ch = conn.channel()
            ch.confirm_delivery()
            ch.queue_declare("full-q", durable=True)
            filler = fill_to(mnt, 8 * MiB)
            publish_ok(ch, b"x")
            dl.wait_for(lambda: conn.process_data_events(0.1) or blocked, 5,
                        "connection.blocked")
            os.unlink(filler)
            dl.wait_for(lambda: conn.process_data_events(0.1) or unblocked, 10,
                        "connection.unblocked")
        finally:
            w.kill()
            w.cleanup()


# ---------------------------------------------------------------------------
# Data dirs warrend must refuse


def snapshot(data_dir):
    """name -> sha256 of every file of the store (DATA/store) but RocksDB's
    info LOGs; warrend's own lock file beside it is not data."""
    d = os.path.join(data_dir, "store")
    if os.path.isfile(d):
        with open(d, "rb") as fh:
            return {"store": hashlib.sha256(fh.read()).hexdigest()}
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            if f == "LOG" or f.startswith("LOG.old"):
                continue
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def refused(data_dir):
    """Starts warrend on data_dir; asserts it refuses, changes nothing; returns stderr."""
    before = snapshot(data_dir)
    r = subprocess.run([wl.warren_bin(), "--store", "rocksdb", "--data", data_dir,
                        "--http", "127.0.0.1:%d" % wl.free_port(),
                        "--amqp", "127.0.0.1:%d" % wl.free_port()],
                       capture_output=True, text=True, timeout=dl.scaled(30, 120),
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0, "warrend started on a bad data dir:\n" + r.stderr[-3000:]
    assert "refusing" in r.stderr, "no clear refusal on stderr:\n" + r.stderr[-3000:]
    assert "warrend ready" not in r.stderr
    assert snapshot(data_dir) == before, "the refused data dir was modified"
    return r.stderr


@pytest.fixture
def warren_store():
    """A data dir holding a real warren store with one durable queue and 2000
    messages, stopped cleanly (so they sit in table files, not only the WAL)."""
    w = dl.durable_warren()
    w.start()
    conn = dl.amqp_connect(w.amqp_port)
    ch = conn.channel()
    ch.queue_declare("keep", durable=True)
    for i in range(1999):
        ch.basic_publish("", "keep", b"%d" % i + b"x" * 200, PERSISTENT)
    ch.confirm_delivery()
    ch.basic_publish("", "keep", b"last", PERSISTENT)
    conn.close()
    assert w.stop() == 0
    # One more start and stop: the WAL is replayed into table files.
    w.start()
    assert w.stop() == 0
    yield w
    w.kill()
    w.cleanup()


def store_file(w, pred):
    d = os.path.join(w.data_dir, "store")
    names = sorted(f for f in os.listdir(d) if pred(f))
    assert names, "no such file in %s: %s" % (d, os.listdir(d))
    return os.path.join(d, names[-1])


def still_serves(w):
    """After the damage is undone the store opens and has every message."""
    w.start()
    conn = dl.amqp_connect(w.amqp_port)
    n = conn.channel().queue_declare("keep", passive=True).method.message_count
    conn.close()
    assert w.stop() == 0
    assert n == 2000


def test_scribbled_current_is_refused(warren_store):
    path = store_file(warren_store, lambda f: f == "CURRENT")
    saved = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(b"\x00garbage\xff\n")
    refused(warren_store.data_dir)
    with open(path, "wb") as f:
        f.write(saved)
    still_serves(warren_store)


def test_truncated_manifest_is_refused(warren_store):
    path = store_file(warren_store, lambda f: f.startswith("MANIFEST-"))
    saved = open(path, "rb").read()
    with open(path, "r+b") as f:
        f.truncate(len(saved) // 3)
    refused(warren_store.data_dir)
    with open(path, "wb") as f:
        f.write(saved)
    still_serves(warren_store)


def test_scribbled_wal_is_refused_or_loses_nothing(warren_store):
    """The messages live in the WAL (a small store is not flushed to table
    files). Damage in the middle of it must not make warrend start without
    the records after the damage (RocksDB's point-in-time recovery would
    stop replaying there): refuse, or serve every message."""
    d = os.path.join(warren_store.data_dir, "store")
    path = max((os.path.join(d, f) for f in os.listdir(d) if f.endswith(".log")),
               key=os.path.getsize)
    saved = open(path, "rb").read()
    assert len(saved) > 100000, "the WAL is not where the messages are: %s" % os.listdir(d)
    with open(path, "r+b") as f:
        f.seek(len(saved) // 3)
        f.write(os.urandom(512))
    w = warren_store
    try:
        w.start()
    except wl.WarrenError as e:
        assert "refusing" in str(e) or "unreadable" in str(e), str(e)[-3000:]
    else:
        conn = dl.amqp_connect(w.amqp_port)
        n = conn.channel().queue_declare("keep", passive=True).method.message_count
        conn.close()
        assert w.stop() == 0
        assert n == 2000, "warrend started on a damaged WAL and serves %d of 2000 " \
            "messages, silently\n%s" % (n, w.log_tail(3000))
        return
    with open(path, "wb") as f:
        f.write(saved)
    still_serves(w)


def test_random_files_in_the_store_dir_are_refused(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "notes.txt").write_text("not a database\n")
    (store / "000001.sst").write_bytes(os.urandom(4096))
    refused(str(tmp_path))


def test_a_store_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "store").write_text("a file, not a directory\n")
    refused(str(tmp_path))


FOREIGN_DB_C = textwrap.dedent(r"""
    #include <rocksdb/c.h>
    #include <stdio.h>
    #include <string.h>
    /* foreign-db DIR [meta msgs ...]: a RocksDB with one key and these column families */
    int main(int argc, char **argv) {
        rocksdb_options_t *o = rocksdb_options_create();
        rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
        char *e = NULL;
        rocksdb_options_set_create_if_missing(o, 1);
        rocksdb_t *db = rocksdb_open(o, argv[1], &e);
        if (e) { fprintf(stderr, "%s\n", e); return 1; }
        for (int i = 2; i < argc && !e; i++)
            rocksdb_column_family_handle_destroy(rocksdb_create_column_family(db, o, argv[i], &e));
        if (!e) rocksdb_put(db, wo, "someone", 7, "else", 4, &e);
        rocksdb_close(db);
        if (e) { fprintf(stderr, "%s\n", e); return 1; }
        return 0;
    }
""")


@pytest.fixture(scope="module")
def foreign_db_tool(tmp_path_factory):
    d = tmp_path_factory.mktemp("foreign")
    src, exe = d / "foreign.c", d / "foreign-db"
    src.write_text(FOREIGN_DB_C)
    cc = shutil.which("cc") or shutil.which("gcc")
    r = subprocess.run([cc or "cc", "-o", str(exe), str(src), "-lrocksdb"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot build a RocksDB writer (librocksdb-dev): " + r.stderr[-500:])
    return str(exe)


@pytest.mark.parametrize("families", [[], ["meta", "msgs"]], ids=["default-only", "our-names"])
def test_a_rocksdb_made_by_something_else_is_refused(foreign_db_tool, tmp_path, families):
    subprocess.run([foreign_db_tool, str(tmp_path / "store")] + families, check=True)
    err = refused(str(tmp_path))
    assert "not a warren store" in err, err[-2000:]
