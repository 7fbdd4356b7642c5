"""The tools a run can be used with, each declaring the faces it requires (GUI-free).

A tool is a workflow in the core (sampling, DDIM inversion and interpolation, the latent explorer,
A/B compare, the NFE and guidance sweeps, evaluation, the 3-D viewers, model views); panels and CLI
commands drive one and ask :func:`why_not` whether the selected run qualifies. The answer comes from
the faces the train job recorded in run.json (``faces``: what the set-up model can do), never from
the plugin's id, so a new family gets every tool its model's faces qualify it for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# how a missing face reads in a message (others: "a model with the X face")
FACE_WORDS = {"Conditional": "a class-conditional run", "Denoiser": "a DDIM-capable diffusion run",
              "TextConditional": "a text-conditional run",
              "Latent": "a model with a latent space (encode/decode)", "Scene": "a 3-D scene model",
              "Codec": "a neural codec (discrete tokens)"}


def _words(face: str) -> str:
    return f"{FACE_WORDS[face]} (the {face} face)" if face in FACE_WORDS else f"a model with the {face} face"


@dataclass(frozen=True)
class Tool:
    """``requires``: face names the run must have; ``any_of``: at least one of these as well."""

    name: str
    title: str
    driver: str  # the core function or module the tool runs (documentation for panels and readers)
    requires: tuple[str, ...] = ("Sampling",)
    any_of: tuple[str, ...] = ()

    def why_not(self, faces: Iterable[str]) -> str:
        """'' if a run with ``faces`` can use this tool, else the reason in a few words."""
        have = set(faces)
        missing = [f for f in self.requires if f not in have]
        if missing:
            return f"{self.title} needs {' and '.join(_words(f) for f in missing)}"
        if self.any_of and not have & set(self.any_of):
            return f"{self.title} needs {' or '.join(_words(f) for f in self.any_of)}"
        return ""


TOOLS: dict[str, Tool] = {t.name: t for t in (
    Tool("sample", "Sampling", "genstudio.core.jobs.sample"),
    Tool("invert", "DDIM inversion and interpolation", "genstudio.core.tools.edit",
         requires=("Denoiser",)),
    Tool("explore", "The latent explorer", "genstudio.core.latent.explore", requires=(),
         any_of=("Latent", "Denoiser")),
    Tool("compare", "A/B compare", "genstudio.core.tools.compare.run_trajectory"),
    Tool("nfe", "The NFE sweep", "genstudio.core.tools.nfe.nfe_curve"),
    Tool("guidance", "The guidance sweep", "genstudio.core.tools.guidance.guidance_sweep",
         any_of=("Conditional", "TextConditional")),
    Tool("eval", "Evaluation", "genstudio.core.eval.evaluate"),
    Tool("scene", "The 3-D viewer", "genstudio.core.scene", requires=("Scene",)),
    Tool("views", "Model views", "genstudio.core.jobs.train", requires=("Views",)),
    Tool("bitrates", "The codec explorer: every bitrate decoded", "genstudio.core.tools.codec.codec_job", requires=("Codec",)),
)}


def register_tool(tool: Tool) -> None:
    """Add a third-party tool (a panel from another package can then declare it)."""
    TOOLS[tool.name] = tool


def run_faces(info: Mapping[str, Any], cls: type | None = None) -> set[str] | None:
    """The face names a run's train job recorded; for a run without a record (not trained yet,
    or trained by an older version) the faces its plugin class declares, else None."""
    from genstudio.core.faces import class_faces

    faces = info.get("faces")
    if faces is not None:
        return set(faces)
    return set(class_faces(cls)) if cls is not None else None


def why_not(tool: str, info: Mapping[str, Any] | None, cls: type | None = None) -> str:
    """'' if the run (its run.json ``info``; ``cls`` its plugin class) can use ``tool``, else why not."""
    if info is None:
        return "select a run"
    faces = run_faces(info, cls)
    if faces is None:
        return "train the run first (what its model can do is recorded when training starts)"
    return TOOLS[tool].why_not(faces)


def tools_for(faces: Iterable[str]) -> list[str]:
    """Names of every tool a run with ``faces`` can use."""
    faces = set(faces)
    return [n for n, t in TOOLS.items() if not t.why_not(faces)]
