"""The plugin contract every model family implements.

A plugin is a class with a class attribute ``info`` (a :class:`PluginInfo`) and the methods of
:class:`ModelPlugin`. Models hold no GUI code and never talk to the event bus: jobs call them and
publish what they return, so the same plugin runs from the CLI, the GUI and the tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import torch

from genstudio.core.config import ModelConfig, fields_of
from genstudio.core.data import DataSpec
from genstudio.core.faces import Latent, Likelihood, Scene, Views


@dataclass(frozen=True)
class PluginInfo:
    """Static description of a plugin, readable without building a model. What its models can do
    is not declared here: it is asked of them through the faces (``genstudio.core.faces``)."""

    id: str
    name: str
    family: str
    config_cls: type[ModelConfig]
    data_kinds: tuple[str, ...] = ("points2d", "image")  # DataSpec.kind values it accepts
    samplers: tuple[str, ...] = ()  # names accepted by sample(sampler=...); first is default
    description: str = ""


@dataclass
class SampleState:
    """One step of a sampling trajectory: what the live preview shows.

    ``x`` is the current state x_t; ``x0`` the model's prediction of the clean sample (None where a
    family has no such notion). ``t`` is in [0, 1] (1 = pure noise) so panels can label any family.
    """

    step: int
    total: int
    t: float
    x: torch.Tensor
    x0: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ModelPlugin(Protocol):
    """What every model family implements. ``device`` is a torch.device chosen by the job.

    A plugin whose config has run-reference fields (``param(runs_of=...)``) also implements
    ``use_run(field, model)`` (:class:`BasePlugin` does): the job calls it before ``setup``.
    """

    info: ClassVar[PluginInfo]

    def __init__(self, config: ModelConfig, device: torch.device) -> None: ...

    def setup(self, data: DataSpec) -> None:
        """Build networks and optimisers for this data shape (called once, before training)."""

    def train_step(self, batch: torch.Tensor, labels: torch.Tensor | None, step: int) -> dict[str, float]:
        """One optimisation step; returns scalars to log (must include ``loss``)."""

    def sample(
        self,
        n: int,
        *,
        seed: int,
        steps: int | None = None,
        sampler: str | None = None,
        cond: torch.Tensor | None = None,
        every: int = 1,
    ) -> Iterator[SampleState]:
        """Yield states every ``every`` steps; the last yielded state holds the final samples."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (weights *and* optimiser state), torch-weights-only safe."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


REQUIRED_METHODS = ("setup", "train_step", "sample", "state_dict", "load_state_dict")


def contract_errors(cls: Any) -> list[str]:
    """Reasons a class does not satisfy the contract (empty when it does)."""
    errors = []
    info = getattr(cls, "info", None)
    if not isinstance(info, PluginInfo):
        errors.append("class attribute 'info' is not a PluginInfo")
    else:
        if not (isinstance(info.config_cls, type) and issubclass(info.config_cls, ModelConfig)):
            errors.append("info.config_cls is not a ModelConfig subclass")
        if not info.id or not info.id.replace("_", "").replace("-", "").isalnum():
            errors.append(f"bad plugin id {info.id!r}")
    for name in REQUIRED_METHODS:
        if not callable(getattr(cls, name, None)):
            errors.append(f"missing method {name}()")
    if isinstance(info, PluginInfo) and not errors and not callable(getattr(cls, "use_run", None)):
        refs = [s.name for s in fields_of(info.config_cls) if s.runs_of]
        if refs:
            errors.append(f"config has run-reference fields ({', '.join(refs)}) but no use_run() method")
    return errors


def cosine_lr_factor(step: int, decay_steps: int) -> float:
    """Multiplier of the base learning rate at training step ``step`` (1-based): 1 at the first
    step, falling as a half cosine to 0 at ``decay_steps``; 1 throughout when ``decay_steps`` is 0."""
    if decay_steps <= 0:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(max(step - 1, 0), decay_steps) / decay_steps))


def apply_lr_schedule(model: Any, step: int) -> None:
    """Set every optimiser group of ``model`` to its initial lr times :func:`cosine_lr_factor` for
    the config's ``lr_decay_steps`` (the initial lr is kept in the group, so it survives a resume
    through the optimiser's state dict). A no-op for constant schedules."""
    decay = int(getattr(getattr(model, "config", None), "lr_decay_steps", 0) or 0)
    if decay <= 0:
        return
    f = cosine_lr_factor(step, decay)
    for opt in vars(model).values():
        if isinstance(opt, torch.optim.Optimizer):
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * f


@dataclass(frozen=True)
class SampleOption:
    """A ``sample()`` keyword beyond n/seed/steps/sampler/every/cond that a plugin declares, so the
    Sampler panel and ``genstudio sample`` offer it without reading the signature: numeric in
    ``range`` (or one of ``choices``), shown only for ``samplers`` (empty = all) and only for runs
    with face ``needs`` (a face name, e.g. "Conditional": a guidance scale needs classes). The
    starting value is the run config's field ``name`` when it has one, else ``default``."""

    name: str
    help: str
    default: float | str
    range: tuple[float, float] = (0.0, 1.0)
    choices: tuple[str, ...] = ()
    samplers: tuple[str, ...] = ()
    needs: str | None = None
    step: float = 0.1


def sample_options(cls: type) -> tuple[SampleOption, ...]:
    """The options a plugin class declares (``sample_options`` class attribute; none by default)."""
    return tuple(getattr(cls, "sample_options", ()) or ())


def option_error(opt: SampleOption, value: Any) -> str | None:
    """Why ``value`` is not a valid value of ``opt`` (outside its declared range or choices), or None:
    the Sampler panel's spin box cannot leave the range; the command line has to check."""
    if opt.choices:
        return None if value in opt.choices else f"{value!r} is not one of {', '.join(opt.choices)}"
    lo, hi = opt.range
    if isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi:
        return None
    return f"{value!r} is outside [{lo:g}, {hi:g}]"


def option_applies(opt: SampleOption, sampler: str | None, faces: set[str] | frozenset[str]) -> bool:
    """Whether ``opt`` means anything for this sampler and a run with these face names."""
    return (not opt.samplers or sampler in opt.samplers) and (opt.needs is None or opt.needs in faces)


def final_state(states: Iterator[SampleState]) -> SampleState:
    """Run a sampling generator to the end and return its last state."""
    last = None
    for last in states:  # noqa: B007
        pass
    if last is None:
        raise RuntimeError("sampler yielded no state")
    return last


# The optional faces live in genstudio.core.faces; these names stay for third-party plugins.
LatentModel, LikelihoodModel, SceneModel, ViewsModel = Latent, Likelihood, Scene, Views


C = TypeVar("C", bound=ModelConfig)  # a plugin's config type: BasePlugin[DDPMConfig].config is a DDPMConfig


class BasePlugin(Generic[C]):
    """Convenience base: keeps ``config`` and ``device`` and saves/loads every ``nn.Module`` and
    ``torch.optim.Optimizer`` attribute automatically, so a family only writes its maths.

    Subclasses name their config type (``class DDPMPlugin(BasePlugin[DDPMConfig])``, so
    ``self.config.timesteps`` type-checks), set ``info`` and implement ``setup``, ``train_step`` and ``sample``.

    Runs of other plugins (a distillation teacher, latent diffusion's VAE) are named by config
    fields declared with ``param(runs_of=...)``. The plugin never loads them itself: the job
    (``genstudio.core.jobs.load_model``) resolves every such field that is set, loads that run's
    model (set up, newest checkpoint, on this plugin's device) and calls ``use_run(field, model)``
    *before* ``setup``; the default keeps it in ``self.runs[field]``, read in ``setup`` with
    :meth:`run_model`. A test or a script built outside a job calls ``use_run`` itself.
    """

    info: ClassVar[PluginInfo]
    # checkpoints a run keeps when it does not say (keep_checkpoints = 0): the newest 3; a family of
    # small nets whose history is worth stepping through (the GANs' fixed-noise grid) keeps every one (-1)
    keep_checkpoints: ClassVar[int] = 3
    # Sampling steps of a training preview when the run leaves it at 0 (auto); None = the
    # sampler's own default. A preview is a whole sampling run every ``sample_every`` steps: with
    # a 1000-step default it can cost more than the training between previews (issue #18).
    preview_steps: ClassVar[int | None] = None
    # True while ``setup`` runs for a model whose checkpoint is loaded right after (set by
    # ``jobs.load_model``): a sub-model trained in setup (an on-the-fly VAE) need not be trained,
    # its weights come from the checkpoint -- sampling an sd run retrained its VAE for minutes.
    restoring: bool = False

    config: C

    def __init__(self, config: C, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        self.data: DataSpec | None = None
        self.runs: dict[str, Any] = {}  # run-reference field -> the set-up model of that run

    def use_run(self, field: str, model: Any) -> None:
        """Take the model of the run that config field ``field`` names (the job calls this before setup)."""
        self.runs[field] = model

    def run_model(self, field: str) -> Any | None:
        """The model handed over for ``field``; None when the config leaves it empty. A set field
        with nothing handed over is an error here, not an AttributeError later."""
        if field in self.runs:
            return self.runs[field]
        ref = getattr(self.config, field, "")
        if ref:
            raise RuntimeError(f"{field} = {ref!r}, but no model of that run was handed over: build the plugin "
                               f"with genstudio.core.jobs.load_model, or call use_run({field!r}, model) before setup")
        return None

    def _stateful(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()
                if isinstance(v, (torch.nn.Module, torch.optim.Optimizer))}

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v.state_dict() for k, v in self._stateful().items()}
        out.update(self.extra_state())
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        objs = self._stateful()
        missing = [k for k in objs if k not in state]
        if missing:
            raise KeyError(f"checkpoint lacks {', '.join(missing)} (was it written by another plugin?)")
        for k, v in objs.items():
            v.load_state_dict(state[k])
        self.load_extra_state({k: v for k, v in state.items() if k not in objs})

    def extra_state(self) -> dict[str, Any]:
        """Tensors/plain values besides modules and optimisers (e.g. EMA weights, a replay buffer)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def check_sampler(self, sampler: str | None) -> str:
        """The sampler name to use (``None`` = the first in ``info.samplers``); raises before any work
        if setup() has not run or the name is unknown, so a bad request fails at the call."""
        if self.data is None:
            raise RuntimeError("call setup() before sample()")
        name = sampler or self.info.samplers[0]
        if name not in self.info.samplers:
            raise ValueError(f"unknown sampler {name!r}; {self.info.name} offers {', '.join(self.info.samplers)}")
        return name

    def generator(self, seed: int) -> torch.Generator:
        """A seeded generator on the model's device (sampling is reproducible per seed)."""
        return torch.Generator(device=self.device).manual_seed(int(seed))
