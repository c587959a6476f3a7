"""test_fairness_grpc.py - fair admission on the gRPC face (issue 20, item 5): client A's burst of
16 Generate streams holds all of --max-num-seqs 16 running slots, then client B sends one short
Generate; the two are told apart by the x-g4-client-id metadata the server trusts with
--trust-client-id. B ends long before A. Without --trust-client-id both are the loopback
address, one client, and B waits for A (the control that shows the measurement can fail).
Bounded: every call has a timeout, every wait a deadline."""
import threading
import time

import grpc

from conftest import SERVED, start_server, stop_server

N = 16
A_TOKENS = 30


def race(srv, pb):
    P = pb.g4serve_pb2
    ch = grpc.insecure_channel(srv.addr)
    grpc.channel_ready_future(ch).result(timeout=30)
    stub = pb.g4serve_pb2_grpc.G4ServeStub(ch)
    tokens, errors, ends = [0] * N, [], []
    lock = threading.Lock()
    started = threading.Event()

    def run_a(i):
        try:
            rq = P.GenerateRequest(model=SERVED, text=f"story {i}", stop=P.StopRules(max_tokens=A_TOKENS, ignore_eos=True))
            for m in stub.Generate(rq, metadata=[("x-g4-client-id", "A")], timeout=300):
                with lock:
                    tokens[i] += len(m.token_ids)
                    if min(tokens) >= 2:
                        started.set()
        except grpc.RpcError as e:
            errors.append(repr(e))
        finally:
            with lock:
                ends.append(time.time())
            started.set()

    threads = [threading.Thread(target=run_a, args=(i,), daemon=True) for i in range(N)]
    for t in threads:
        t.start()
    assert started.wait(timeout=120), "A's streams did not start"
    assert not errors and not ends, (errors, len(ends))
    b0 = time.time()
    rq = P.GenerateRequest(model=SERVED, text="hi", stop=P.StopRules(max_tokens=2, ignore_eos=True))
    got = sum(len(m.token_ids) for m in stub.Generate(rq, metadata=[("x-g4-client-id", "B")], timeout=300))
    b1 = time.time()
    for t in threads:
        t.join(timeout=300)
    ch.close()
    assert not errors, errors
    assert got == 2 and tokens == [A_TOKENS] * N, (got, tokens)
    return b1 - b0, max(ends) - b0


def test_newcomer_runs_beside_a_full_batch_grpc(pb):
    srv = start_server(["--max-num-seqs", str(N), "--trust-client-id"])
    try:
        b, a = race(srv, pb)
    finally:
        stop_server(srv)
    print(f"gRPC fair: B took {b:.2f} s, A ended {a:.2f} s after B started")
    assert b < a / 4, f"B took {b:.2f} s, A ended {a:.2f} s after B started"


def test_untrusted_metadata_is_ignored_grpc(pb):
    srv = start_server(["--max-num-seqs", str(N)])
    try:
        b, a = race(srv, pb)
    finally:
        stop_server(srv)
    print(f"gRPC untrusted metadata: B took {b:.2f} s, A ended {a:.2f} s after B started")
    assert b > a / 2, f"B took {b:.2f} s although A ended {a:.2f} s after B started: the metadata was trusted"
