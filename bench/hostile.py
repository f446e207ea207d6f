#!/usr/bin/env python3
"""Hostile clients against one more-server on 127.0.0.1, all at once for DURATION seconds (bench/hostile.sh
starts the server and the normal client and reads the results). Standard library only.

1. slow training uploads: POST /api/v1/jobs declaring 64 MiB, then one byte every 30 s (reconnecting
   whenever the server closes the connection);
2. silent key uploads: POST /api/v1/bfv/keys with chunked headers and then nothing;
3. connect, send, close: a whole BFV key message (7.7 MB of real keys) posted and the socket closed
   at once, so the server's parse outlives the request;
4. event replays: one job with batches of one row (a step event per row), its event stream opened again
   and again and read for a second.

Prints one JSON line: per attack, connections made and the statuses the server answered (or "closed").
"""
import json
import os
import socket
import sys
import threading
import time
import urllib.request

HOST, PORT = sys.argv[1].split(":")
PORT = int(PORT)
DURATION = float(sys.argv[2])
KEYS = open(sys.argv[3], "rb").read()
JOB = open(sys.argv[4], "rb").read()
END = time.time() + DURATION
lock = threading.Lock()
stats = {name: {"connections": 0, "answers": {}} for name in ("slow_uploads", "silent_key_uploads", "send_and_close", "event_replays")}


def count(attack, answer):
    with lock:
        s = stats[attack]
        s["connections"] += 1
        s["answers"][answer] = s["answers"].get(answer, 0) + 1


def status_of(sock):
    try:
        sock.settimeout(max(0.1, END - time.time() + 5))
        head = sock.recv(64)
        return head.split(b" ")[1].decode() if head.startswith(b"HTTP/") else "closed"
    except OSError:
        return "closed"


def connect():
    s = socket.create_connection((HOST, PORT))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def slow_upload():
    while time.time() < END:
        s = connect()
        try:
            s.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-more-training-job\r\n"
                      b"content-length: 67108864\r\n\r\n")
            s.settimeout(0.2)
            while time.time() < END:
                s.sendall(b"M")
                deadline = time.time() + 30
                answered = None
                while time.time() < min(deadline, END):
                    try:
                        data = s.recv(64)
                        answered = data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "closed"
                        break
                    except socket.timeout:
                        continue
                if answered:
                    count("slow_uploads", answered)
                    break
            else:
                count("slow_uploads", "open at the end (deadline not reached)")
        except OSError:
            count("slow_uploads", "closed")
        finally:
            s.close()


def silent_keys():
    while time.time() < END:
        s = connect()
        try:
            s.sendall(b"POST /api/v1/bfv/keys HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\n"
                      b"transfer-encoding: chunked\r\n\r\n")
            count("silent_key_uploads", status_of(s))
        except OSError:
            count("silent_key_uploads", "closed")
        finally:
            s.close()


def send_and_close():
    head = (b"POST /api/v1/bfv/keys HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\n"
            b"content-length: %d\r\n\r\n" % len(KEYS))
    while time.time() < END:
        try:
            s = connect()
            s.sendall(head + KEYS)
            s.close()
            count("send_and_close", "closed by the client")
        except OSError:
            count("send_and_close", "refused while sending")
        time.sleep(0.05)


def event_replays(events_url):
    while time.time() < END:
        s = connect()
        try:
            s.sendall(b"GET %s HTTP/1.1\r\nhost: x\r\n\r\n" % events_url.encode())
            s.settimeout(1.0)
            got = b""
            t = time.time()
            while time.time() - t < 1.0:
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    break
                if not data:
                    break
                got += data
            count("event_replays", got.split(b" ")[1].decode() if got.startswith(b"HTTP/") else "closed")
        except OSError:
            count("event_replays", "closed")
        finally:
            s.close()


req = urllib.request.Request(f"http://{HOST}:{PORT}/api/v1/jobs", data=JOB,
                             headers={"content-type": "application/x-more-training-job"})
job = json.load(urllib.request.urlopen(req))
threads = [threading.Thread(target=slow_upload) for _ in range(4)]
threads += [threading.Thread(target=silent_keys) for _ in range(10)]
threads += [threading.Thread(target=send_and_close) for _ in range(2)]
threads += [threading.Thread(target=event_replays, args=(job["events_url"],)) for _ in range(4)]
for t in threads:
    t.daemon = True
    t.start()
time.sleep(DURATION)
urllib.request.urlopen(urllib.request.Request(f"http://{HOST}:{PORT}{job['status_url']}", method="DELETE"))
with lock:
    print(json.dumps(stats))
os._exit(0)
