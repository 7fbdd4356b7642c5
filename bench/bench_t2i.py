"""Issue #14's numbers: the text-to-image families (sd, imagen, dalle, unified) on captions16 after
the same CPU budget each, seeds 0,1,2, one thread; then the guidance sweep of each seed-0 model.

The budget is CPU seconds (``time.process_time``, so a loaded machine does not shrink it) from
before the model is built: setup is counted against the family that needs it -- sd trains its VAE
on the fly in setup, dalle and unified each train their own VQ-VAE on the fly in setup (seeded
inside the plugin, so it is the same for every seed; only the generator's seed varies), imagen needs
none. Per (family, seed): GenEval-like accuracy per category on seen and held-out combinations
(the same fixed test prompts for every model) and samples per CPU-second of that generation;
unified also its greedy image -> caption scores. Every record is appended to ``--jsonl`` as it is
made, so ``--summary`` prints the tables (mean +- sd over seeds) of a run cut short.

    OMP_NUM_THREADS=1 python bench/bench_t2i.py [--budget 120] [--seeds 0,1,2] [--jsonl FILE]
    python bench/bench_t2i.py --summary FILE[,FILE...]

On a loaded machine the seeds can run as separate processes (``--seeds 2 --scales "" --jsonl B``;
the budget is CPU time, so they do not disturb each other's numbers) and be summarised together.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genstudio.core.data import get_dataset
from genstudio.core.metrics.alignment import SPLITS, caption_scores, generate, geneval_scores, prompts_of
from genstudio.core.metrics.scene_reader import scene_reader
from genstudio.core.registry import registry
from genstudio.core.tools.guidance import default_sampler, text_guidance_sweep

FAMILIES = ("sd", "imagen", "dalle", "unified")
DIFFUSION = ("sd", "imagen")  # DDIM ``steps`` apply; the token families decode one token at a time


def train_for(pid: str, ds: Any, budget: float, seed: int) -> tuple[Any, dict[str, Any]]:
    """A default-config ``pid`` model set up and trained until ``budget`` CPU-s have passed (setup
    included); the record says how the budget was spent."""
    cls = registry().get(pid)
    torch.manual_seed(seed)
    t0 = time.process_time()
    model = cls(cls.info.config_cls(), "cpu")
    model.setup(ds.spec)
    setup_s = time.process_time() - t0
    g, step, loss = torch.Generator().manual_seed(seed), 0, float("nan")
    while time.process_time() - t0 < budget:
        step += 1
        x, y = ds.batch(model.config.batch_size, g)
        loss = float(model.train_step(x, y, step)["loss"])
    return model, {"setup_cpu_s": setup_s, "train_steps": step, "cpu_s": time.process_time() - t0, "loss": loss}


def evaluate(pid: str, model: Any, ds: Any, reader: Any, per_category: int, guidance: float, steps: int
             ) -> dict[str, Any]:
    """GenEval-like scores per split on the fixed test prompts, and samples per CPU-second."""
    from genstudio.core.plugin import sample_options

    # clip (a baseline: retrieval for text -> image, the closest caption for image -> caption) has no guidance
    takes = {o.name for o in sample_options(type(model))}
    kw: dict[str, Any] = {"guidance": guidance} if "guidance" in takes else {}
    if pid in DIFFUSION:
        kw["steps"] = steps
    out: dict[str, Any] = {}
    n = cpu = 0.0
    for split in SPLITS:
        prompts = prompts_of(ds, split, per_category, 0)
        t0 = time.process_time()
        x = generate(model, prompts, 0, **kw)
        cpu += time.process_time() - t0
        n += len(prompts)
        out[split] = {c: v["value"] for c, v in geneval_scores(x, prompts, reader).items()}
    out["samples_per_cpu_s"] = n / max(cpu, 1e-9)
    if callable(getattr(model, "caption_images", None)):
        real = ds.test_set("seen", per_category)
        out["captioning"] = caption_scores(model.caption_images(real.x), real.scenes)
    return out


def emit(path: Path, rec: dict[str, Any]) -> None:
    print(json.dumps(rec), flush=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")


def _ms(v: list[float], digits: int = 2) -> str:
    if not v:
        return "–"
    return f"{np.mean(v):.{digits}f} ± {np.std(v, ddof=1):.{digits}f}" if len(v) > 1 else f"{v[0]:.{digits}f}"


def summary(path: Path) -> str:
    """Markdown tables of a JSONL file: accuracy mean ± sd over seeds, then the guidance sweep."""
    recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return summary_of(recs)


def summary_of(recs: list[dict[str, Any]]) -> str:
    """:func:`summary` of records (several runs' files concatenated: e.g. one process per seed)."""
    evals = list({(r["family"], r["seed"]): r for r in reversed(recs) if r["kind"] == "eval"}.values())[::-1]
    cats = ("single", "colour", "two", "counting", "position", "colour_attr")
    lines = ["| family | seeds | steps | " + " | ".join(f"seen {c}" for c in cats)
             + " | seen overall | held-out overall | samples/CPU-s |", "|---" * (len(cats) + 6) + "|"]
    families = list(dict.fromkeys(r["family"] for r in evals))  # as run: the four, and clip if asked
    for fam in families:
        rs = [r for r in evals if r["family"] == fam]
        if not rs:
            continue
        cells = [_ms([r["seen"][c] for r in rs if c in r["seen"]]) for c in (*cats, "overall")]
        lines.append(f"| {fam} | {len(rs)} | {_ms([r['train_steps'] for r in rs], 0)} | "
                     + " | ".join(cells) + f" | {_ms([r['heldout']['overall'] for r in rs])} | "
                     f"{_ms([r['samples_per_cpu_s'] for r in rs], 1)} |")
    caps = [(fam, [r["captioning"] for r in evals if r["family"] == fam and "captioning" in r]) for fam in families]
    if any(c for _, c in caps):
        lines += ["", "| image -> caption | seeds | precision | recall | exact |", "|---|---|---|---|---|"]
        lines += [f"| {fam} | {len(c)} | " + " | ".join(_ms([x[k] for x in c]) for k in ("precision", "recall", "exact"))
                  + " |" for fam, c in caps if c]
    sweep = [r for r in recs if r["kind"] == "sweep"]
    if sweep:
        lines += ["", "| family | scale | accuracy | diversity | saturation (data) | clipped | seconds |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['family']} | {r['scale']:g} | {r['accuracy']:.2f} | {r['diversity']:.2f} | "
                  f"{r['saturation']:.3f} ({r['data_saturation']:.3f}) | {r['clipped']:.3f} | {r['seconds']:.1f} |"
                  for r in sweep]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=120.0, help="CPU seconds per model (setup + training)")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--per-category", type=int, default=16, help="test prompts per category and split")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps (sd, imagen)")
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--scales", default="1,2,3,5,8", help="guidance sweep scales (seed-0 models)")
    ap.add_argument("--sweep-prompts", type=int, default=3, help="sweep: prompts per category")
    ap.add_argument("--per-prompt", type=int, default=4, help="sweep: samples per prompt")
    ap.add_argument("--jsonl", default="/tmp/t2ibench.jsonl")
    ap.add_argument("--summary", default=None, help="only print the tables of these JSONL files (comma list)")
    a = ap.parse_args()
    if a.summary:
        print(summary_of([json.loads(line) for f in a.summary.split(",")
                          for line in Path(f).read_text(encoding="utf-8").splitlines() if line.strip()]))
        return
    torch.set_num_threads(1)
    out = Path(a.jsonl)
    out.write_text("", encoding="utf-8")
    ds = get_dataset("captions16")
    reader = scene_reader(device="cpu")
    real = {s: geneval_scores(ds.test_set(s, a.per_category).x, prompts_of(ds, s, a.per_category), reader)["overall"]
            ["value"] for s in SPLITS}
    emit(out, {"kind": "real", **real})
    scales = [float(s) for s in a.scales.split(",") if s.strip()]  # "" = no sweep
    for seed in [int(s) for s in a.seeds.split(",")]:
        for pid in a.families.split(","):
            model, rec = train_for(pid, ds, a.budget, seed)
            rec |= evaluate(pid, model, ds, reader, a.per_category, a.guidance, a.steps)
            emit(out, {"kind": "eval", "family": pid, "seed": seed, "budget": a.budget, **rec})
            if seed == 0 and scales:
                steps = a.steps if pid in DIFFUSION else None
                for row in text_guidance_sweep(model, ds, scales, per_category=a.sweep_prompts, per_prompt=a.per_prompt,
                                               steps=steps, sampler=default_sampler(model), reader=reader):
                    emit(out, {"kind": "sweep", "family": pid, **row})
            del model
    print(summary(out))


if __name__ == "__main__":
    main()
