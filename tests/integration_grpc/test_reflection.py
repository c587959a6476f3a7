"""test_reflection.py - gRPC server reflection with grpcio's own reflection client
(grpcio-reflection's ProtoReflectionDescriptorDatabase, what grpcurl does in Go): the services
are listed, every file and symbol resolves, the reflected descriptors equal the ones grpcio-tools'
protoc compiles from proto/ (message names, field numbers, types, labels; methods and their
streaming), and a call made only from reflected descriptors (no generated stubs) works. Bad
questions get an ErrorResponse with NOT_FOUND, the stream stays usable; the v1 path answers too."""
import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

SERVICES = {
    "g4serve.v1.G4Serve",
    "inference.GRPCInferenceService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
}


def shape(fd):
    """What a client needs from a FileDescriptorProto: messages with their fields, services."""
    out = {"package": fd.package}

    def msg(m, prefix):
        out[prefix + m.name] = sorted((f.name, f.number, f.type, f.label, f.type_name, f.oneof_index if
                                       f.HasField("oneof_index") else -1) for f in m.field)
        for n in m.nested_type:
            msg(n, prefix + m.name + ".")
        for e in m.enum_type:
            out[prefix + m.name + "." + e.name] = sorted((v.name, v.number) for v in e.value)

    for m in fd.message_type:
        msg(m, "")
    for e in fd.enum_type:
        out[e.name] = sorted((v.name, v.number) for v in e.value)
    for s in fd.service:
        out[s.name] = sorted((m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming)
                             for m in s.method)
    return out


def test_list_and_resolve_every_service(pb, server, channel):
    db = ProtoReflectionDescriptorDatabase(channel)
    assert set(db.get_services()) == SERVICES
    pool = descriptor_pool.DescriptorPool(db)
    g4 = pool.FindServiceByName("g4serve.v1.G4Serve")
    assert g4.file.name == "g4serve.proto"
    assert {m.name for m in g4.methods} == {m.name for m in pb.g4serve_pb2.DESCRIPTOR.services_by_name["G4Serve"].methods}
    # the reflected files equal what grpcio-tools' protoc makes of proto/
    for mod, name in ((pb.g4serve_pb2, "g4serve.proto"), (pb.health_pb2, "health.proto")):
        want = descriptor_pb2.FileDescriptorProto.FromString(mod.DESCRIPTOR.serialized_pb)
        got = descriptor_pb2.FileDescriptorProto()
        pool.FindFileByName(name).CopyToProto(got)
        assert shape(got) == shape(want), name
    # a nested symbol and a method resolve to their file
    assert pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse").file.name == "health.proto"
    assert pool.FindMethodByName("inference.GRPCInferenceService.ModelStreamInfer").client_streaming


def test_call_from_reflected_descriptors_only(server, channel):
    """What grpcurl does: no stubs, only what reflection says."""
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    check = pool.FindMethodByName("grpc.health.v1.Health.Check")
    Req = message_factory.GetMessageClass(check.input_type)
    Resp = message_factory.GetMessageClass(check.output_type)
    call = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=Req.SerializeToString,
                               response_deserializer=Resp.FromString)
    r = call(Req(service="g4serve.v1.G4Serve"), timeout=10)
    assert r.status == check.output_type.enum_types_by_name["ServingStatus"].values_by_name["SERVING"].number


@pytest.mark.parametrize("path", ["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                  "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"])
def test_errors_keep_the_stream(server, channel, path):
    R = reflection_pb2
    call = channel.stream_stream(path, request_serializer=R.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=R.ServerReflectionResponse.FromString)
    reqs = [R.ServerReflectionRequest(host="h", file_containing_symbol="no.such.Symbol"),
            R.ServerReflectionRequest(file_by_filename="nope.proto"),
            R.ServerReflectionRequest(file_containing_extension=R.ExtensionRequest(containing_type="x", extension_number=5)),
            R.ServerReflectionRequest(all_extension_numbers_of_type="g4serve.v1.GenerateRequest"),
            R.ServerReflectionRequest(),
            R.ServerReflectionRequest(list_services="")]
    got = list(call(iter(reqs), timeout=20))
    assert len(got) == len(reqs)
    for q, r in zip(reqs, got):
        assert r.original_request == q
    assert got[0].valid_host == "h"
    assert got[0].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "no.such.Symbol" in got[0].error_response.error_message
    assert got[1].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert got[2].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert got[3].all_extension_numbers_response.base_type_name == "g4serve.v1.GenerateRequest"
    assert list(got[3].all_extension_numbers_response.extension_number) == []
    assert got[4].error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert {s.name for s in got[5].list_services_response.service} == SERVICES


def test_garbage_message_is_invalid_argument(server, channel):
    call = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                 request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        list(call(iter([b"\xff\xff\xff"]), timeout=10))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
