from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReloadSequencesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadSequencesResponse(_message.Message):
    __slots__ = ("sequences",)
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    sequences: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sequences: _Optional[_Iterable[str]] = ...) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class UserView(_message.Message):
    __slots__ = ("user_id", "email", "email_verified", "suppressed", "timezone", "devices", "instances", "sends", "aggregates")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    EMAIL_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    SENDS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATES_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    email: str
    email_verified: bool
    suppressed: bool
    timezone: str
    devices: _containers.RepeatedScalarFieldContainer[str]
    instances: _containers.RepeatedCompositeFieldContainer[InstanceView]
    sends: _containers.RepeatedCompositeFieldContainer[SendView]
    aggregates: _containers.RepeatedCompositeFieldContainer[AggregateView]
    def __init__(self, user_id: _Optional[str] = ..., email: _Optional[str] = ..., email_verified: _Optional[bool] = ..., suppressed: _Optional[bool] = ..., timezone: _Optional[str] = ..., devices: _Optional[_Iterable[str]] = ..., instances: _Optional[_Iterable[_Union[InstanceView, _Mapping]]] = ..., sends: _Optional[_Iterable[_Union[SendView, _Mapping]]] = ..., aggregates: _Optional[_Iterable[_Union[AggregateView, _Mapping]]] = ...) -> None: ...

class AggregateView(_message.Message):
    __slots__ = ("signal", "at_ms")
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    signal: str
    at_ms: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, signal: _Optional[str] = ..., at_ms: _Optional[_Iterable[int]] = ...) -> None: ...

class InstanceView(_message.Message):
    __slots__ = ("sequence", "key", "step", "due_ms")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    DUE_MS_FIELD_NUMBER: _ClassVar[int]
    sequence: str
    key: str
    step: int
    due_ms: int
    def __init__(self, sequence: _Optional[str] = ..., key: _Optional[str] = ..., step: _Optional[int] = ..., due_ms: _Optional[int] = ...) -> None: ...

class SendView(_message.Message):
    __slots__ = ("sequence", "template", "at_ms", "status", "reason")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    sequence: str
    template: str
    at_ms: int
    status: str
    reason: str
    def __init__(self, sequence: _Optional[str] = ..., template: _Optional[str] = ..., at_ms: _Optional[int] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SuppressRequest(_message.Message):
    __slots__ = ("email", "suppressed")
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    email: str
    suppressed: bool
    def __init__(self, email: _Optional[str] = ..., suppressed: _Optional[bool] = ...) -> None: ...

class SuppressResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EraseUserRequest(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class EraseUserResponse(_message.Message):
    __slots__ = ("rows_removed",)
    ROWS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    rows_removed: int
    def __init__(self, rows_removed: _Optional[int] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("sequences", "programme", "min_count")
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    PROGRAMME_FIELD_NUMBER: _ClassVar[int]
    MIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    sequences: _containers.RepeatedCompositeFieldContainer[SequenceStats]
    programme: ProgrammeStats
    min_count: int
    def __init__(self, sequences: _Optional[_Iterable[_Union[SequenceStats, _Mapping]]] = ..., programme: _Optional[_Union[ProgrammeStats, _Mapping]] = ..., min_count: _Optional[int] = ...) -> None: ...

class SequenceStats(_message.Message):
    __slots__ = ("sequence", "entered", "exited", "steps", "converted", "treated", "holdout", "uplift", "uplift_note", "arms")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ENTERED_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CONVERTED_FIELD_NUMBER: _ClassVar[int]
    TREATED_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FIELD_NUMBER: _ClassVar[int]
    UPLIFT_FIELD_NUMBER: _ClassVar[int]
    UPLIFT_NOTE_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    sequence: str
    entered: int
    exited: int
    steps: _containers.RepeatedCompositeFieldContainer[StepStats]
    converted: int
    treated: CohortStats
    holdout: CohortStats
    uplift: Uplift
    uplift_note: str
    arms: _containers.RepeatedCompositeFieldContainer[ArmStats]
    def __init__(self, sequence: _Optional[str] = ..., entered: _Optional[int] = ..., exited: _Optional[int] = ..., steps: _Optional[_Iterable[_Union[StepStats, _Mapping]]] = ..., converted: _Optional[int] = ..., treated: _Optional[_Union[CohortStats, _Mapping]] = ..., holdout: _Optional[_Union[CohortStats, _Mapping]] = ..., uplift: _Optional[_Union[Uplift, _Mapping]] = ..., uplift_note: _Optional[str] = ..., arms: _Optional[_Iterable[_Union[ArmStats, _Mapping]]] = ...) -> None: ...

class ProgrammeStats(_message.Message):
    __slots__ = ("treated", "holdout", "uplift", "uplift_note")
    TREATED_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FIELD_NUMBER: _ClassVar[int]
    UPLIFT_FIELD_NUMBER: _ClassVar[int]
    UPLIFT_NOTE_FIELD_NUMBER: _ClassVar[int]
    treated: CohortStats
    holdout: CohortStats
    uplift: Uplift
    uplift_note: str
    def __init__(self, treated: _Optional[_Union[CohortStats, _Mapping]] = ..., holdout: _Optional[_Union[CohortStats, _Mapping]] = ..., uplift: _Optional[_Union[Uplift, _Mapping]] = ..., uplift_note: _Optional[str] = ...) -> None: ...

class CohortStats(_message.Message):
    __slots__ = ("entered", "converted", "rate", "ci95")
    ENTERED_FIELD_NUMBER: _ClassVar[int]
    CONVERTED_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    CI95_FIELD_NUMBER: _ClassVar[int]
    entered: int
    converted: int
    rate: float
    ci95: Interval
    def __init__(self, entered: _Optional[int] = ..., converted: _Optional[int] = ..., rate: _Optional[float] = ..., ci95: _Optional[_Union[Interval, _Mapping]] = ...) -> None: ...

class Interval(_message.Message):
    __slots__ = ("low", "high")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    low: float
    high: float
    def __init__(self, low: _Optional[float] = ..., high: _Optional[float] = ...) -> None: ...

class Uplift(_message.Message):
    __slots__ = ("absolute", "relative", "ci95", "relative_ci95", "p_value")
    ABSOLUTE_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_FIELD_NUMBER: _ClassVar[int]
    CI95_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_CI95_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    absolute: float
    relative: float
    ci95: Interval
    relative_ci95: Interval
    p_value: float
    def __init__(self, absolute: _Optional[float] = ..., relative: _Optional[float] = ..., ci95: _Optional[_Union[Interval, _Mapping]] = ..., relative_ci95: _Optional[_Union[Interval, _Mapping]] = ..., p_value: _Optional[float] = ...) -> None: ...

class ArmStats(_message.Message):
    __slots__ = ("name", "weight", "entered", "sent", "opened", "clicked", "converted", "rate", "ci95", "p_value_vs_first")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENTERED_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    OPENED_FIELD_NUMBER: _ClassVar[int]
    CLICKED_FIELD_NUMBER: _ClassVar[int]
    CONVERTED_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    CI95_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_VS_FIRST_FIELD_NUMBER: _ClassVar[int]
    name: str
    weight: float
    entered: int
    sent: int
    opened: int
    clicked: int
    converted: int
    rate: float
    ci95: Interval
    p_value_vs_first: float
    def __init__(self, name: _Optional[str] = ..., weight: _Optional[float] = ..., entered: _Optional[int] = ..., sent: _Optional[int] = ..., opened: _Optional[int] = ..., clicked: _Optional[int] = ..., converted: _Optional[int] = ..., rate: _Optional[float] = ..., ci95: _Optional[_Union[Interval, _Mapping]] = ..., p_value_vs_first: _Optional[float] = ...) -> None: ...

class StepStats(_message.Message):
    __slots__ = ("step", "sent", "suppressed", "opened", "clicked", "converted", "converted_clicked", "kind", "template", "arm")
    class SuppressedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    OPENED_FIELD_NUMBER: _ClassVar[int]
    CLICKED_FIELD_NUMBER: _ClassVar[int]
    CONVERTED_FIELD_NUMBER: _ClassVar[int]
    CONVERTED_CLICKED_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    step: int
    sent: int
    suppressed: _containers.ScalarMap[str, int]
    opened: int
    clicked: int
    converted: int
    converted_clicked: int
    kind: str
    template: str
    arm: str
    def __init__(self, step: _Optional[int] = ..., sent: _Optional[int] = ..., suppressed: _Optional[_Mapping[str, int]] = ..., opened: _Optional[int] = ..., clicked: _Optional[int] = ..., converted: _Optional[int] = ..., converted_clicked: _Optional[int] = ..., kind: _Optional[str] = ..., template: _Optional[str] = ..., arm: _Optional[str] = ...) -> None: ...
