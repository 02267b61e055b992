from collector.gen.pulsewire.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Batch(_message.Message):
    __slots__ = ("site_key", "device_id", "seq", "base_time_ms", "sent_at_ms", "strings", "events", "identity", "context", "stream", "resume", "strings_from", "age_ms", "resumable")
    SITE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    BASE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FROM_FIELD_NUMBER: _ClassVar[int]
    AGE_MS_FIELD_NUMBER: _ClassVar[int]
    RESUMABLE_FIELD_NUMBER: _ClassVar[int]
    site_key: str
    device_id: str
    seq: int
    base_time_ms: int
    sent_at_ms: int
    strings: _containers.RepeatedScalarFieldContainer[str]
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.Event]
    identity: Identity
    context: Context
    stream: int
    resume: int
    strings_from: int
    age_ms: int
    resumable: bool
    def __init__(self, site_key: _Optional[str] = ..., device_id: _Optional[str] = ..., seq: _Optional[int] = ..., base_time_ms: _Optional[int] = ..., sent_at_ms: _Optional[int] = ..., strings: _Optional[_Iterable[str]] = ..., events: _Optional[_Iterable[_Union[_events_pb2.Event, _Mapping]]] = ..., identity: _Optional[_Union[Identity, _Mapping]] = ..., context: _Optional[_Union[Context, _Mapping]] = ..., stream: _Optional[int] = ..., resume: _Optional[int] = ..., strings_from: _Optional[int] = ..., age_ms: _Optional[int] = ..., resumable: _Optional[bool] = ...) -> None: ...

class Identity(_message.Message):
    __slots__ = ("user_id", "email", "signature")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    email: str
    signature: str
    def __init__(self, user_id: _Optional[str] = ..., email: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class Context(_message.Message):
    __slots__ = ("timezone", "locale", "viewport_width", "viewport_height", "device_class", "currency", "collector")
    class DeviceClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DEVICE_CLASS_UNSPECIFIED: _ClassVar[Context.DeviceClass]
        DESKTOP: _ClassVar[Context.DeviceClass]
        MOBILE: _ClassVar[Context.DeviceClass]
        TABLET: _ClassVar[Context.DeviceClass]
        BOT: _ClassVar[Context.DeviceClass]
    DEVICE_CLASS_UNSPECIFIED: Context.DeviceClass
    DESKTOP: Context.DeviceClass
    MOBILE: Context.DeviceClass
    TABLET: Context.DeviceClass
    BOT: Context.DeviceClass
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    VIEWPORT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    VIEWPORT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_CLASS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_FIELD_NUMBER: _ClassVar[int]
    timezone: str
    locale: str
    viewport_width: int
    viewport_height: int
    device_class: Context.DeviceClass
    currency: str
    collector: str
    def __init__(self, timezone: _Optional[str] = ..., locale: _Optional[str] = ..., viewport_width: _Optional[int] = ..., viewport_height: _Optional[int] = ..., device_class: _Optional[_Union[Context.DeviceClass, str]] = ..., currency: _Optional[str] = ..., collector: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("seq", "accepted", "duplicate", "rejection", "device_id", "stream", "resume", "strings_kept")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    STRINGS_KEPT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    accepted: int
    duplicate: bool
    rejection: Rejection
    device_id: str
    stream: int
    resume: int
    strings_kept: int
    def __init__(self, seq: _Optional[int] = ..., accepted: _Optional[int] = ..., duplicate: _Optional[bool] = ..., rejection: _Optional[_Union[Rejection, _Mapping]] = ..., device_id: _Optional[str] = ..., stream: _Optional[int] = ..., resume: _Optional[int] = ..., strings_kept: _Optional[int] = ...) -> None: ...

class Rejection(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
