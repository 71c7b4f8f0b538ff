"""Render typed ``*_pb2_grpc.pyi`` stubs from compiled ``.proto`` descriptors.

grpcio-tools writes untyped client/server classes; under ``mypy --strict`` every caller
would then need ``type: ignore``. These stubs give each stub method its request and
response types (via :mod:`novacron.protos.rpc_typing`, which also makes the deadline a
required argument) and each servicer method its exact signature. Only the synchronous
API is described; the EXPERIMENTAL static helper class grpcio-tools also emits is left
out on purpose, so typed code cannot depend on it.

Pure functions of ``FileDescriptorProto`` values: no protoc, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    FileDescriptorProto,
    MethodDescriptorProto,
    ServiceDescriptorProto,
)

# Field numbers inside descriptor.proto, used to address comments in SourceCodeInfo.
_FILE_SERVICE_FIELD = 6
_SERVICE_METHOD_FIELD = 2

# (client_streaming, server_streaming) -> rpc_typing protocol name.
_CALL_PROTOCOLS = {
    (False, False): "UnaryUnaryCall",
    (False, True): "UnaryStreamCall",
    (True, False): "StreamUnaryCall",
    (True, True): "StreamStreamCall",
}


def module_name(proto_path: str) -> str:
    """Python module of a proto file: ``novacron/protos/x.proto`` -> ``novacron.protos.x_pb2``."""
    path = PurePosixPath(proto_path)
    return ".".join([*path.parent.parts, path.stem + "_pb2"])


def grpc_stub_name(proto_path: str) -> str:
    """File name of the stub written for a proto file: ``x.proto`` -> ``x_pb2_grpc.pyi``."""
    return PurePosixPath(proto_path).stem + "_pb2_grpc.pyi"


class _TypeNames:
    """Map fully qualified message names (``.novacron.v1.Frame``) to Python expressions."""

    def __init__(self, files: Iterable[FileDescriptorProto]) -> None:
        self._names: dict[str, tuple[str, str]] = {}
        for file in files:
            prefix = f".{file.package}" if file.package else ""
            for message in file.message_type:
                self._add(message, prefix, "", module_name(file.name))
        self.used_modules: set[str] = set()

    def _add(self, message: DescriptorProto, prefix: str, outer: str, module: str) -> None:
        python_path = f"{outer}.{message.name}" if outer else message.name
        self._names[f"{prefix}.{message.name}"] = (module, python_path)
        for nested in message.nested_type:
            self._add(nested, f"{prefix}.{message.name}", python_path, module)

    def expr(self, full_name: str) -> str:
        try:
            module, python_path = self._names[full_name]
        except KeyError:
            raise ValueError(f"message type {full_name} is not in the descriptor set") from None
        self.used_modules.add(module)
        return f"{module_alias(module)}.{python_path}"


def module_alias(module: str) -> str:
    """Import alias for a generated module, ``novacron.protos.common_pb2`` -> ``_common_pb2``."""
    return "_" + module.rsplit(".", 1)[-1]


def _comment(file: FileDescriptorProto, path: Sequence[int]) -> str:
    for location in file.source_code_info.location:
        if list(location.path) == list(path):
            return "\n".join(line.strip() for line in location.leading_comments.strip().split("\n"))
    return ""


def method_comments(file: FileDescriptorProto) -> dict[str, str]:
    """Leading comment of every rpc, keyed ``Service/Method`` (needs source info)."""
    comments: dict[str, str] = {}
    for s_index, service in enumerate(file.service):
        for m_index, method in enumerate(service.method):
            path = (_FILE_SERVICE_FIELD, s_index, _SERVICE_METHOD_FIELD, m_index)
            comments[f"{service.name}/{method.name}"] = _comment(file, path)
    return comments


def _docstring(text: str, indent: str) -> list[str]:
    if not text:
        return []
    body = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = body.split("\n")
    if len(lines) == 1:
        return [f'{indent}"""{lines[0]}"""']
    return [f'{indent}"""{lines[0]}', *[f"{indent}{line}" for line in lines[1:]], f'{indent}"""']


def _stub_class(
    service: ServiceDescriptorProto, s_index: int, file: FileDescriptorProto, types: _TypeNames
) -> list[str]:
    out = [f"class {service.name}Stub:"]
    out += _docstring(_comment(file, (_FILE_SERVICE_FIELD, s_index)) or "Client.", "    ")
    out += ["", "    def __init__(self, channel: grpc.Channel) -> None: ..."]
    for m_index, method in enumerate(service.method):
        protocol = _CALL_PROTOCOLS[(method.client_streaming, method.server_streaming)]
        request, response = types.expr(method.input_type), types.expr(method.output_type)
        out += ["", f"    {method.name}: {protocol}[", f"        {request}, {response}", "    ]"]
        path = (_FILE_SERVICE_FIELD, s_index, _SERVICE_METHOD_FIELD, m_index)
        out += _docstring(_comment(file, path), "    ")
    return out


def _servicer_method(method: MethodDescriptorProto, types: _TypeNames, doc: str) -> list[str]:
    request, response = types.expr(method.input_type), types.expr(method.output_type)
    if method.client_streaming:
        request_param = f"request_iterator: Iterator[{request}]"
    else:
        request_param = f"request: {request}"
    returns = f"Iterator[{response}]" if method.server_streaming else response
    head = [
        f"    def {method.name}(",
        f"        self, {request_param}, context: grpc.ServicerContext",
        f"    ) -> {returns}:",
    ]
    body = _docstring(doc, "        ") or ['        """Not implemented: UNIMPLEMENTED."""']
    return head + body


def _servicer_class(
    service: ServiceDescriptorProto, s_index: int, file: FileDescriptorProto, types: _TypeNames
) -> list[str]:
    out = [f"class {service.name}Servicer:"]
    out += _docstring(
        "Server base class: subclass it and override every method.\n"
        "Methods not overridden answer UNIMPLEMENTED.",
        "    ",
    )
    for m_index, method in enumerate(service.method):
        path = (_FILE_SERVICE_FIELD, s_index, _SERVICE_METHOD_FIELD, m_index)
        out += ["", *_servicer_method(method, types, _comment(file, path))]
    out += [
        "",
        "",
        f"def add_{service.name}Servicer_to_server(",
        f"    servicer: {service.name}Servicer, server: grpc.Server",
        ") -> None: ...",
    ]
    return out


def render_grpc_stub(file: FileDescriptorProto, all_files: Sequence[FileDescriptorProto]) -> str:
    """The ``.pyi`` text for ``file``'s services; ``all_files`` resolves imported types."""
    types = _TypeNames(all_files)
    sections: list[list[str]] = []
    for s_index, service in enumerate(file.service):
        sections.append(_stub_class(service, s_index, file, types))
        sections.append(_servicer_class(service, s_index, file, types))
    streaming = any(
        m.client_streaming or m.server_streaming for s in file.service for m in s.method
    )
    protocols = sorted(
        {
            _CALL_PROTOCOLS[(m.client_streaming, m.server_streaming)]
            for s in file.service
            for m in s.method
        }
    )
    header = [
        f'"""Typed client and server classes for {file.name}.',
        "",
        "Generated by novacron.protos.codegen. DO NOT EDIT.",
        '"""',
        "",
    ]
    if streaming:
        header += ["from collections.abc import Iterator", ""]
    header += ["import grpc", ""]
    for module in sorted(types.used_modules):
        package, _, name = module.rpartition(".")
        header.append(f"from {package} import {name} as {module_alias(module)}")
    header.append(f"from novacron.protos.rpc_typing import {', '.join(protocols)}")
    lines = header
    for section in sections:
        lines += ["", "", *section]
    return "\n".join(lines) + "\n"
