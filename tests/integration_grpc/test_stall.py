"""test_stall.py - gRPC Generate streams whose clients read nothing stop holding running slots:
the server cancels a call whose send has waited longer than --stream-stall-timeout (the client's
flow-control window stayed full), the generations are aborted and free their KV blocks, and a
normal Generate still runs. A raw HTTP/2 reader would be the sharpest client; grpcio's own
transport reads ahead only up to its flow-control window, so streams it never iterates stall."""
import os
import time

import grpc
import pytest
from conftest import SERVED, start_server, stop_server
from server_metrics import gauges  # tests/common (on the path through conftest)

SAN = os.environ.get("G4_SANITIZE") == "1"


def test_unread_streams_are_cancelled(pb):
    if SAN:
        # Under ASan and TSan the slow model fills the flow-control window only after minutes
        # (108 s and 170 s in CI, near the 4,000 tokens under TSan): too slow a check for the
        # sanitizer stages' budget. The stall path ran clean under both when measured; the plain
        # build runs this test on every commit.
        pytest.skip("timing-bound flow-control test: runs in the plain build only")
    P = pb.g4serve_pb2
    srv = start_server(["--stream-stall-timeout", "2", "--max-num-seqs", "4", "--max-model-len", "4096"])
    http = f"http://127.0.0.1:{srv.http_port}"
    # small windows: the client's transport buffers little before it waits for the application
    opts = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0),
            ("grpc.max_receive_message_length", 1 << 20)]
    ch = grpc.insecure_channel(srv.addr, options=opts)
    try:
        stub = pb.g4serve_pb2_grpc.G4ServeStub(ch)
        calls = [stub.Generate(P.GenerateRequest(text="tell me everything " * 4, logprobs=True, top_logprobs=20,
                                                 stop=P.StopRules(max_tokens=4000, ignore_eos=True)), timeout=300)
                 for _ in range(4)]
        deadline = time.time() + (180 if SAN else 90)
        while "read nothing" not in srv.log() and time.time() < deadline:
            time.sleep(0.2)
        assert "read nothing" in srv.log(), srv.log()[-3000:]
        # the stalled calls end with RESOURCE_EXHAUSTED once read
        codes = []
        for c in calls:
            try:
                for _ in c:
                    pass
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes, codes
        deadline = time.time() + 60
        while True:
            g = gauges(http)
            if g["g4_kv_blocks_used"] == 0 and g["vllm:num_requests_running"] == 0:
                break
            assert time.time() < deadline, g
            time.sleep(0.2)
        assert g.get("vllm:generation_tokens_total", 0) < 4 * 4000  # the calls ended early
        out = list(stub.Generate(P.GenerateRequest(text="hi", stop=P.StopRules(max_tokens=2)), timeout=60))
        assert out and out[-1].finish_reason
    finally:
        ch.close()
        stop_server(srv)
