"""The steps of a sequence: send, wait, wait_for, branch, exit, and split.

A `split` sends each user down one of its named arms, by weight; an arm holds steps of its own,
and when they run out the user goes on after the split. The engine runs a sequence as one flat
list (`placed_steps` gives the order): the main steps, with each split followed by its arms'
steps, arm after arm. Jumps go forward in that order; a step outside an arm cannot jump into
one (only the split assigns arms), and a step inside an arm can jump within its own arm or to
a step after the split. A sequence has at most one split, so each user is in at most one arm of
it, and arms are compared per sequence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from server.sequences.conditions import Condition, DurationMs, Name, Strict, Where

__all__ = [
    "Arm",
    "Branch",
    "BranchStep",
    "ExitStep",
    "PlacedStep",
    "Send",
    "SendStep",
    "Split",
    "SplitStep",
    "Step",
    "WaitFor",
    "WaitForStep",
    "WaitStep",
    "check_targets",
    "located_error",
    "placed_steps",
]

# Where to go: the next step, the end of the instance, or a later step by name.
Target = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=100)]


class Send(Strict):
    template: Name
    vars: dict[str, Any] = Field(default_factory=dict)


class WaitFor(Strict):
    """Wait until an event (matching the instance key) or the timeout, whichever comes first."""

    event: Name
    where: Where = Field(default_factory=dict)
    timeout: DurationMs
    match_key: bool = True
    emit: Name | None = Field(
        default=None,
        description="event the engine emits into the user's stream on timeout; by default "
        "cart_abandonment when the sequence enters on cart_add, checkout_abandonment on "
        "checkout_start, browse_abandonment on product_view, else none",
    )


class Branch(Strict):
    if_: list[Condition] = Field(alias="if", min_length=1)
    then: Target = "next"
    else_: Target = Field(default="next", alias="else")


class _Step(Strict):
    name: Name | None = None


class SendStep(_Step):
    send: Send


class WaitStep(_Step):
    wait: DurationMs


class WaitForStep(_Step):
    wait_for: WaitFor
    on_event: Target = "next"
    on_timeout: Target = "next"


class BranchStep(_Step):
    branch: Branch


class ExitStep(_Step):
    exit: Literal[True] = True


class Arm(Strict):
    """One way through a split: its users get these steps, then go on after the split."""

    name: Name
    weight: float = Field(gt=0, le=1_000_000, description="relative share of users")
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_split_inside(self) -> Arm:
        for k, step in enumerate(self.steps):
            if isinstance(step, SplitStep):
                raise located_error(("steps", k, "split"), "a split cannot hold another split")
        return self


class Split(Strict):
    """Users go down one arm each, by weight, drawn from (user, sequence, step): stable."""

    arms: list[Arm] = Field(min_length=2, max_length=32)

    @model_validator(mode="after")
    def _names_unique(self) -> Split:
        seen: set[str] = set()
        for j, arm in enumerate(self.arms):
            if arm.name in seen:
                raise located_error(("arms", j, "name"), f"arm name {arm.name!r} is used twice")
            seen.add(arm.name)
        return self


class SplitStep(_Step):
    split: Split


_STEP_KINDS = ("send", "wait_for", "wait", "branch", "exit", "split")


def _step_kind(value: Any) -> str | None:
    if value == "exit":
        return "=exit"
    if isinstance(value, dict):
        present = [k for k in _STEP_KINDS if k in value]
        return f"={present[0]}" if len(present) == 1 else None
    return None


def _bare_exit(value: Any) -> Any:
    return {"exit": True} if value == "exit" else value


Step = Annotated[
    Annotated[SendStep, Tag("=send")]
    | Annotated[WaitStep, Tag("=wait")]
    | Annotated[WaitForStep, Tag("=wait_for")]
    | Annotated[BranchStep, Tag("=branch")]
    | Annotated[ExitStep, Tag("=exit")]
    | Annotated[SplitStep, Tag("=split")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step has exactly one of: send, wait, wait_for, branch, exit, "
        "split",
    ),
    BeforeValidator(_bare_exit),
]
Arm.model_rebuild()


@dataclass(frozen=True, slots=True)
class PlacedStep:
    """A step where the engine runs it: its place in the flat order, its location in the file
    (`loc`, a path of keys and indexes) and the arm it belongs to (-1: none)."""

    index: int
    loc: tuple[int | str, ...]
    step: Any
    arm: int


def placed_steps(steps: list[Any]) -> Iterator[PlacedStep]:
    """Every step in the engine's flat order (see the module's docstring)."""
    index = 0
    for i, step in enumerate(steps):
        yield PlacedStep(index, ("steps", i), step, -1)
        index += 1
        if isinstance(step, SplitStep):
            for j, arm in enumerate(step.split.arms):
                for k, inner in enumerate(arm.steps):
                    yield PlacedStep(index, ("steps", i, "split", "arms", j, "steps", k), inner, j)
                    index += 1


def check_targets(steps: list[Any]) -> None:
    """Names are unique and every jump names a step it may reach (see the module's
    docstring); raises a located error at the first that does not."""
    placed = list(placed_steps(steps))
    if sum(isinstance(p.step, SplitStep) for p in placed) > 1:
        second = [p for p in placed if isinstance(p.step, SplitStep)][1]
        raise located_error((*second.loc, "split"), "a sequence has at most one split")
    named: dict[str, PlacedStep] = {}
    for p in placed:
        if p.step.name is not None:
            if p.step.name in named:
                raise located_error((*p.loc, "name"), f"step name {p.step.name!r} is used twice")
            named[p.step.name] = p
    for p in placed:
        for at, target in _targets(p.step):
            if target in ("next", "exit"):
                continue
            goal = named.get(target)
            if goal is None:
                raise located_error((*p.loc, *at), f"no step is named {target!r}")
            if goal.arm >= 0 and goal.arm != p.arm:
                raise located_error((*p.loc, *at), f"{target!r} is inside another arm of a "
                                    "split (only the split assigns arms)")
            if goal.index <= p.index:
                raise located_error((*p.loc, *at),
                                    f"{target!r} is not a later step (jumps go forward)")


def located_error(at: tuple[int | str, ...], message: str) -> PydanticCustomError:
    """A model-level error that still says where it is: `ctx["at"]` is the path to the field."""
    return PydanticCustomError("sequence_rule", message, {"at": at})


def _targets(step: Any) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(step, WaitForStep):
        return [(("on_event",), step.on_event), (("on_timeout",), step.on_timeout)]
    if isinstance(step, BranchStep):
        return [(("branch", "then"), step.branch.then), (("branch", "else"), step.branch.else_)]
    return []
