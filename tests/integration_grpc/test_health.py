"""test_health.py - grpc.health.v1.Health Check and Watch with a grpcio client: SERVING for the
known service names, NOT_FOUND / SERVICE_UNKNOWN for others, Watch ends when the server stops."""
import grpc
import pytest

from conftest import start_server, stop_server


def test_check_and_watch(pb, server, channel):
    H = pb.health_pb2
    stub = pb.health_pb2_grpc.HealthStub(channel)
    for svc in ("", "inference.GRPCInferenceService", "g4serve.v1.G4Serve"):
        assert stub.Check(H.HealthCheckRequest(service=svc), timeout=5).status == H.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as e:
        stub.Check(H.HealthCheckRequest(service="nope"), timeout=5)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    w = stub.Watch(H.HealthCheckRequest(service="nope"), timeout=10)
    assert next(w).status == H.HealthCheckResponse.SERVICE_UNKNOWN
    w.cancel()
    w = stub.Watch(H.HealthCheckRequest(service=""), timeout=10)
    assert next(w).status == H.HealthCheckResponse.SERVING
    w.cancel()


def test_watch_ends_on_shutdown(pb):
    H = pb.health_pb2
    srv = start_server()
    ch = grpc.insecure_channel(srv.addr)
    try:
        w = pb.health_pb2_grpc.HealthStub(ch).Watch(H.HealthCheckRequest(service=""), timeout=60)
        assert next(w).status == H.HealthCheckResponse.SERVING
        stop_server(srv)
        codes = []
        try:
            for r in w:
                codes.append(r.status)
        except grpc.RpcError as e:
            codes.append(e.code())
        assert codes and codes[-1] == grpc.StatusCode.UNAVAILABLE
    finally:
        ch.close()
        if srv.proc.poll() is None:
            srv.proc.kill()
