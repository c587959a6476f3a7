"""test_load.py - 200 concurrent streaming Generate RPCs, 30 of them cancelled after their
first message: the other 170 complete with all their tokens, the 30 end CANCELLED, the engine
counts 30 aborts, and afterwards no KV block is in use (ModelInfo load)."""
import threading
import time

import grpc

N, N_CANCEL, MAX_TOKENS = 200, 30, 4


def test_200_streams_30_cancelled(pb, channel):
    P = pb.g4serve_pb2
    stub = pb.g4serve_pb2_grpc.G4ServeStub(channel)
    before = stub.ModelInfo(P.ModelInfoRequest(), timeout=10).load
    done, cancelled, errors = [], [], []
    lock = threading.Lock()

    def run(i):
        cancel = i % (N // N_CANCEL) == 0 and i // (N // N_CANCEL) < N_CANCEL
        stop = P.StopRules(max_tokens=3000 if cancel else MAX_TOKENS, ignore_eos=True)
        stream = stub.Generate(P.GenerateRequest(text=f"request number {i}", stop=stop), timeout=240)
        try:
            ids, last = [], None
            for r in stream:
                ids += list(r.token_ids)
                last = r
                if cancel:
                    stream.cancel()
            with lock:
                done.append((i, ids, last))
        except grpc.RpcError as e:
            with lock:
                (cancelled if e.code() == grpc.StatusCode.CANCELLED and cancel else errors).append((i, e.code()))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(N)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, 270 - (time.time() - t0)))
    assert not any(t.is_alive() for t in threads), "some streams did not finish in time"
    assert not errors, errors[:5]
    assert len(cancelled) == N_CANCEL
    assert len(done) == N - N_CANCEL
    for i, ids, last in done:
        assert len(ids) == MAX_TOKENS and last.finish_reason == P.FINISH_REASON_LENGTH, i
        assert last.usage.completion_tokens == MAX_TOKENS
    deadline = time.time() + 30
    while True:
        load = stub.ModelInfo(P.ModelInfoRequest(), timeout=10).load
        if (load.running == 0 and load.waiting == 0) or time.time() > deadline:
            break
        time.sleep(0.05)
    assert load.running == 0 and load.waiting == 0
    assert load.kv_blocks_global_used == 0 and load.kv_blocks_sliding_used == 0
    assert load.finished_abort - before.finished_abort == N_CANCEL
    assert load.finished_length - before.finished_length == N - N_CANCEL
