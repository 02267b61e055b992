"""The wire contract: generated code is fresh, every element is documented, messages round-trip
compactly, and the gRPC paths are the ones clients call."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
    ServiceDescriptorProto,
)

from collector.gen.pulsewire.v1 import admin_pb2, batch_pb2, events_pb2, ingest_pb2

REPO = Path(__file__).resolve().parent.parent
PROTOS = sorted((REPO / "proto").glob("pulsewire/v1/*.proto"))
GENERATED = ("collector/gen", "server/rpc/gen")


def _files_under(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for folder in GENERATED
        for path in sorted((root / folder).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_committed_generated_code_matches_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run([REPO / "scripts" / "gen_protos", "--out", tmp_path], check=True)
    fresh, committed = _files_under(tmp_path), _files_under(REPO)

    missing = sorted(fresh.keys() - committed.keys())
    extra = sorted(committed.keys() - fresh.keys())
    changed = sorted(name for name in fresh.keys() & committed.keys()
                     if fresh[name] != committed[name])
    assert not (missing or extra or changed), (
        f"generated code is stale (missing: {missing}, extra: {extra}, changed: {changed}); "
        "run ./scripts/gen_protos"
    )


def test_collector_messages_do_not_need_grpcio() -> None:
    importing_grpc = [
        path.name for path in (REPO / "collector" / "gen").rglob("*.py*")
        if path.suffix in (".py", ".pyi") and "import grpc" in path.read_text()
    ]
    assert importing_grpc == []


def _descriptor_set(tmp_path: Path) -> FileDescriptorSet:
    out = tmp_path / "contract.pb"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'proto'}",
         "--include_source_info", f"--descriptor_set_out={out}", *PROTOS],
        check=True,
    )
    return FileDescriptorSet.FromString(out.read_bytes())


def _message_elements(message: DescriptorProto, path: tuple[int, ...],
                      name: str) -> Iterator[tuple[tuple[int, ...], str]]:
    yield path, name
    for i, field in enumerate(message.field):
        yield (*path, DescriptorProto.FIELD_FIELD_NUMBER, i), f"{name}.{field.name}"
    synthetic = {f.oneof_index for f in message.field if f.proto3_optional}
    for i, oneof in enumerate(message.oneof_decl):
        if i not in synthetic:
            yield (*path, DescriptorProto.ONEOF_DECL_FIELD_NUMBER, i), f"{name}.{oneof.name}"
    for i, enum in enumerate(message.enum_type):
        yield (*path, DescriptorProto.ENUM_TYPE_FIELD_NUMBER, i), f"{name}.{enum.name}"
    for i, nested in enumerate(message.nested_type):
        if not nested.options.map_entry:
            nested_path = (*path, DescriptorProto.NESTED_TYPE_FIELD_NUMBER, i)
            yield from _message_elements(nested, nested_path, f"{name}.{nested.name}")


def _elements(file: FileDescriptorProto) -> Iterator[tuple[tuple[int, ...], str]]:
    """Yields (source path, name) of every element that needs a comment (enum values don't)."""
    for i, message in enumerate(file.message_type):
        yield from _message_elements(message, (FileDescriptorProto.MESSAGE_TYPE_FIELD_NUMBER, i),
                                     message.name)
    for i, enum in enumerate(file.enum_type):
        yield (FileDescriptorProto.ENUM_TYPE_FIELD_NUMBER, i), enum.name
    for i, service in enumerate(file.service):
        service_path = (FileDescriptorProto.SERVICE_FIELD_NUMBER, i)
        yield service_path, service.name
        for j, method in enumerate(service.method):
            method_path = (*service_path, ServiceDescriptorProto.METHOD_FIELD_NUMBER, j)
            yield method_path, f"{service.name}.{method.name}"


def test_every_message_field_oneof_enum_service_and_rpc_is_documented(tmp_path: Path) -> None:
    files = _descriptor_set(tmp_path).file
    assert sorted(file.name for file in files) == [
        "pulsewire/v1/admin.proto", "pulsewire/v1/batch.proto",
        "pulsewire/v1/events.proto", "pulsewire/v1/ingest.proto",
    ]
    undocumented = []
    for file in files:
        documented = {
            tuple(location.path) for location in file.source_code_info.location
            if location.leading_comments.strip() or location.trailing_comments.strip()
        }
        undocumented += [f"{file.name}: {name}" for path, name in _elements(file)
                         if path not in documented]
    assert undocumented == [], "add a comment to:\n" + "\n".join(undocumented)


def _realistic_batch() -> batch_pb2.Batch:
    strings = ["/product/laptop", "Laptop Pro 14", "https://www.example.com/", "product:sku-123",
               "sku-123", "cart-9f2c", "product_view", "color", "slate", "stock", "rating",
               "gift"]
    s = {text: index for index, text in enumerate(strings)}
    path = s["/product/laptop"]
    events = [
        events_pb2.Event(page_view=events_pb2.PageView(
            path=path, title=s["Laptop Pro 14"], referrer=s["https://www.example.com/"])),
        *(events_pb2.Event(dt_ms=900 + depth * 10, scroll=events_pb2.Scroll(
            path=path, depth_pct=depth)) for depth in (25, 50, 70, 90)),
        events_pb2.Event(dt_ms=1_500, dwell=events_pb2.Dwell(path=path, engaged_ms=41_250)),
        events_pb2.Event(dt_ms=300, hover=events_pb2.Hover(
            path=path, target=s["product:sku-123"], ms=650)),
        events_pb2.Event(dt_ms=2_000, cart_add=events_pb2.CartLine(
            sku=s["sku-123"], qty=1, price_minor=129_900, cart_id=s["cart-9f2c"])),
        events_pb2.Event(custom=events_pb2.Custom(name=s["product_view"], props=[
            events_pb2.Prop(key=s["color"], str=s["slate"]),
            events_pb2.Prop(key=s["stock"], int=-3),
            events_pb2.Prop(key=s["rating"], num=4.5),
            events_pb2.Prop(key=s["gift"], flag=True),
        ])),
    ]
    return batch_pb2.Batch(
        site_key="pk_live_3f9a", device_id="d-5b0e8c1a", seq=42,
        base_time_ms=1_767_225_600_000, sent_at_ms=1_767_225_610_000,
        strings=strings, events=events,
        identity=batch_pb2.Identity(user_id="u-77", email="ada@example.com", signature="ab" * 32),
        context=batch_pb2.Context(
            timezone="Europe/Berlin", locale="de-DE", viewport_width=1440, viewport_height=900,
            device_class=batch_pb2.Context.DESKTOP, currency="EUR", collector="browser/0.1.0"),
    )


def test_a_realistic_batch_round_trips() -> None:
    batch = _realistic_batch()
    parsed = batch_pb2.Batch.FromString(batch.SerializeToString())

    assert parsed == batch
    assert parsed.strings[0] == "/product/laptop"
    assert [e.WhichOneof("payload") for e in parsed.events] == [
        "page_view", "scroll", "scroll", "scroll", "scroll", "dwell", "hover", "cart_add", "custom"]
    assert [e.scroll.depth_pct for e in parsed.events[1:5]] == [25, 50, 70, 90]
    assert parsed.events[7].cart_add.price_minor == 129_900
    assert parsed.strings[parsed.events[7].cart_add.cart_id] == "cart-9f2c"
    assert [p.WhichOneof("value") for p in parsed.events[8].custom.props] == [
        "str", "int", "num", "flag"]
    assert parsed.events[8].custom.props[1].int == -3
    assert parsed.identity.email == "ada@example.com"
    assert parsed.context.device_class == batch_pb2.Context.DESKTOP


def test_a_scroll_on_the_current_page_costs_at_most_seven_bytes() -> None:
    # String index 0 costs nothing, a dt_ms under 2**14 is a two-byte varint, a depth one byte.
    scroll = events_pb2.Event(dt_ms=16_383, scroll=events_pb2.Scroll(path=0, depth_pct=100))
    assert scroll.ByteSize() <= 7


def _call_paths(service: ServiceDescriptor) -> set[str]:
    return {f"/{service.full_name}/{method.name}" for method in service.methods}


def test_service_paths_are_the_ones_clients_call() -> None:
    ingest = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"]
    admin = admin_pb2.DESCRIPTOR.services_by_name["Admin"]

    assert _call_paths(ingest) == {"/pulsewire.v1.Ingest/Send", "/pulsewire.v1.Ingest/Stream"}
    assert _call_paths(admin) == {
        "/pulsewire.v1.Admin/ReloadSequences", "/pulsewire.v1.Admin/GetUser",
        "/pulsewire.v1.Admin/Suppress", "/pulsewire.v1.Admin/EraseUser",
        "/pulsewire.v1.Admin/Stats",
    }
    stream = ingest.methods_by_name["Stream"]
    assert stream.client_streaming and stream.server_streaming
