from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Event(_message.Message):
    __slots__ = ("dt_ms", "page_view", "scroll", "dwell", "hover", "cart_add", "cart_remove", "checkout_start", "purchase", "form", "media", "identify", "email_open", "email_click", "custom")
    DT_MS_FIELD_NUMBER: _ClassVar[int]
    PAGE_VIEW_FIELD_NUMBER: _ClassVar[int]
    SCROLL_FIELD_NUMBER: _ClassVar[int]
    DWELL_FIELD_NUMBER: _ClassVar[int]
    HOVER_FIELD_NUMBER: _ClassVar[int]
    CART_ADD_FIELD_NUMBER: _ClassVar[int]
    CART_REMOVE_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_START_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_FIELD_NUMBER: _ClassVar[int]
    FORM_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    IDENTIFY_FIELD_NUMBER: _ClassVar[int]
    EMAIL_OPEN_FIELD_NUMBER: _ClassVar[int]
    EMAIL_CLICK_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    dt_ms: int
    page_view: PageView
    scroll: Scroll
    dwell: Dwell
    hover: Hover
    cart_add: CartLine
    cart_remove: CartLine
    checkout_start: CheckoutStart
    purchase: Purchase
    form: Form
    media: Media
    identify: Identify
    email_open: EmailOpen
    email_click: EmailClick
    custom: Custom
    def __init__(self, dt_ms: _Optional[int] = ..., page_view: _Optional[_Union[PageView, _Mapping]] = ..., scroll: _Optional[_Union[Scroll, _Mapping]] = ..., dwell: _Optional[_Union[Dwell, _Mapping]] = ..., hover: _Optional[_Union[Hover, _Mapping]] = ..., cart_add: _Optional[_Union[CartLine, _Mapping]] = ..., cart_remove: _Optional[_Union[CartLine, _Mapping]] = ..., checkout_start: _Optional[_Union[CheckoutStart, _Mapping]] = ..., purchase: _Optional[_Union[Purchase, _Mapping]] = ..., form: _Optional[_Union[Form, _Mapping]] = ..., media: _Optional[_Union[Media, _Mapping]] = ..., identify: _Optional[_Union[Identify, _Mapping]] = ..., email_open: _Optional[_Union[EmailOpen, _Mapping]] = ..., email_click: _Optional[_Union[EmailClick, _Mapping]] = ..., custom: _Optional[_Union[Custom, _Mapping]] = ...) -> None: ...

class PageView(_message.Message):
    __slots__ = ("path", "title", "referrer")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    REFERRER_FIELD_NUMBER: _ClassVar[int]
    path: int
    title: int
    referrer: int
    def __init__(self, path: _Optional[int] = ..., title: _Optional[int] = ..., referrer: _Optional[int] = ...) -> None: ...

class Scroll(_message.Message):
    __slots__ = ("path", "depth_pct")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DEPTH_PCT_FIELD_NUMBER: _ClassVar[int]
    path: int
    depth_pct: int
    def __init__(self, path: _Optional[int] = ..., depth_pct: _Optional[int] = ...) -> None: ...

class Dwell(_message.Message):
    __slots__ = ("path", "engaged_ms")
    PATH_FIELD_NUMBER: _ClassVar[int]
    ENGAGED_MS_FIELD_NUMBER: _ClassVar[int]
    path: int
    engaged_ms: int
    def __init__(self, path: _Optional[int] = ..., engaged_ms: _Optional[int] = ...) -> None: ...

class Hover(_message.Message):
    __slots__ = ("path", "target", "ms")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    path: int
    target: int
    ms: int
    def __init__(self, path: _Optional[int] = ..., target: _Optional[int] = ..., ms: _Optional[int] = ...) -> None: ...

class CartLine(_message.Message):
    __slots__ = ("sku", "qty", "price_minor", "cart_id")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QTY_FIELD_NUMBER: _ClassVar[int]
    PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    CART_ID_FIELD_NUMBER: _ClassVar[int]
    sku: int
    qty: int
    price_minor: int
    cart_id: int
    def __init__(self, sku: _Optional[int] = ..., qty: _Optional[int] = ..., price_minor: _Optional[int] = ..., cart_id: _Optional[int] = ...) -> None: ...

class CheckoutStart(_message.Message):
    __slots__ = ("cart_id", "value_minor")
    CART_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_MINOR_FIELD_NUMBER: _ClassVar[int]
    cart_id: int
    value_minor: int
    def __init__(self, cart_id: _Optional[int] = ..., value_minor: _Optional[int] = ...) -> None: ...

class Purchase(_message.Message):
    __slots__ = ("order_id", "value_minor", "currency", "cart_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CART_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: int
    value_minor: int
    currency: int
    cart_id: int
    def __init__(self, order_id: _Optional[int] = ..., value_minor: _Optional[int] = ..., currency: _Optional[int] = ..., cart_id: _Optional[int] = ...) -> None: ...

class Form(_message.Message):
    __slots__ = ("name", "action")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[Form.Action]
        SUBMIT: _ClassVar[Form.Action]
        WISHLIST: _ClassVar[Form.Action]
        SIGNUP: _ClassVar[Form.Action]
    ACTION_UNSPECIFIED: Form.Action
    SUBMIT: Form.Action
    WISHLIST: Form.Action
    SIGNUP: Form.Action
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    name: int
    action: Form.Action
    def __init__(self, name: _Optional[int] = ..., action: _Optional[_Union[Form.Action, str]] = ...) -> None: ...

class Media(_message.Message):
    __slots__ = ("asset", "action")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[Media.Action]
        COMPLETE: _ClassVar[Media.Action]
        DOWNLOAD: _ClassVar[Media.Action]
    ACTION_UNSPECIFIED: Media.Action
    COMPLETE: Media.Action
    DOWNLOAD: Media.Action
    ASSET_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    asset: int
    action: Media.Action
    def __init__(self, asset: _Optional[int] = ..., action: _Optional[_Union[Media.Action, str]] = ...) -> None: ...

class Identify(_message.Message):
    __slots__ = ("user_id", "email", "signature", "traits")
    class TraitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    email: str
    signature: str
    traits: _containers.ScalarMap[str, str]
    def __init__(self, user_id: _Optional[str] = ..., email: _Optional[str] = ..., signature: _Optional[str] = ..., traits: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EmailOpen(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    def __init__(self, message_id: _Optional[str] = ...) -> None: ...

class EmailClick(_message.Message):
    __slots__ = ("message_id", "url")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    url: str
    def __init__(self, message_id: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class Custom(_message.Message):
    __slots__ = ("name", "props")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROPS_FIELD_NUMBER: _ClassVar[int]
    name: int
    props: _containers.RepeatedCompositeFieldContainer[Prop]
    def __init__(self, name: _Optional[int] = ..., props: _Optional[_Iterable[_Union[Prop, _Mapping]]] = ...) -> None: ...

class Prop(_message.Message):
    __slots__ = ("key", "str", "int", "num", "flag")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STR_FIELD_NUMBER: _ClassVar[int]
    INT_FIELD_NUMBER: _ClassVar[int]
    NUM_FIELD_NUMBER: _ClassVar[int]
    FLAG_FIELD_NUMBER: _ClassVar[int]
    key: int
    str: int
    int: int
    num: float
    flag: bool
    def __init__(self, key: _Optional[int] = ..., str: _Optional[int] = ..., int: _Optional[int] = ..., num: _Optional[float] = ..., flag: _Optional[bool] = ...) -> None: ...
