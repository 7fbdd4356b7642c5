"""A run as one self-contained HTML page, for people without GenStudio (``genstudio report RUN --out DIR``).

Everything is inside ``DIR/index.html``: CSS and a few lines of JS inline, pictures as data URIs,
curves as inline SVG drawn here, so the page opens offline, from an e-mail attachment or a USB
stick, and fetches nothing. Sections: the run's settings, its logged curves, the sample grids it
logged over training (a slider), the denoising trajectory of its final checkpoint sampled with a
fixed seed (a slider and a play button), and its stored evaluations with intervals and the
real-vs-real floor. ``#traj=K`` / ``#train=K`` in the page's address opens a player at frame K
(links to a moment, and how the Chromium test checks the slider). No Qt here.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from genstudio.core.eval import METRIC_INFO, clipped_interval, format_value, load_evals, reference_text
from genstudio.core.imaging import frame_indices, trajectory_frames, trajectory_label
from genstudio.core.runs import Run
from genstudio.core.timelapse import frame_label, logged_previews, loss_at, metric_columns, read_rgb

REPORT_FILE = "index.html"
TRAJ_FRAMES = 40  # frames of the trajectory player: smooth enough to scrub, a few MB at most
TRAIN_FRAMES = 24  # logged previews shown over training (evenly spaced, first and last kept)
AXES = ("step", "time")  # metric-row columns that are axes, not curves
NOT_QUALITY = ("sampling_time", "nfe", "sample_steps")  # eval entries about cost: in the table, not charted
Progress = Callable[[str, int, int], None]


def data_uri(img: np.ndarray) -> str:
    """An (H, W, 3) uint8 picture as a data URI: PNG, or JPEG where that is smaller (noisy frames of
    image samples are ten times smaller as JPEG; dots on a dark ground are smaller as PNG)."""
    im = Image.fromarray(np.ascontiguousarray(img[..., :3], np.uint8))
    best = None
    for fmt, kw in (("PNG", {"compress_level": 6}), ("JPEG", {"quality": 88})):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        if best is None or buf.tell() < len(best[1]):
            best = (fmt.lower(), buf.getvalue())
    return f"data:image/{best[0]};base64,{base64.b64encode(best[1]).decode('ascii')}"


def _num(v: float) -> str:
    return f"{v:.4g}"


def svg_chart(x: Sequence[float], y: Sequence[float], title: str, *, lo: Sequence[float] | None = None,
              hi: Sequence[float] | None = None, floor: float | None = None, width: int = 440,
              height: int = 190) -> str:
    """A line chart of (x, y) as inline SVG (NaN gaps skipped), with an optional shaded interval
    (``lo``..``hi``) and a dashed ``floor`` line; '' when there is nothing finite to draw."""
    xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(xs) & np.isfinite(ys)
    if not ok.any():
        return ""
    band = None
    if lo is not None and hi is not None:
        band = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        ok_b = ok & np.isfinite(band[0]) & np.isfinite(band[1])
    extra = [floor] if floor is not None and math.isfinite(floor) else []
    vals = np.concatenate([ys[ok], *(b[ok_b] for b in band)] if band else [ys[ok]])
    y0, y1 = float(min([vals.min(), *extra])), float(max([vals.max(), *extra]))
    x0, x1 = float(xs[ok].min()), float(xs[ok].max())
    y1, x1 = (y1 if y1 > y0 else y0 + 1.0), (x1 if x1 > x0 else x0 + 1.0)
    left, right, top, bottom = 52, 10, 24, 22
    pw, ph = width - left - right, height - top - bottom

    def px(a: np.ndarray) -> np.ndarray:
        return left + (a - x0) / (x1 - x0) * pw

    def py(a: np.ndarray) -> np.ndarray:
        return top + (y1 - a) / (y1 - y0) * ph

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<text x="{left}" y="15" class="ct">{html.escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>']
    for v in (y0, y1):
        parts.append(f'<text x="{left - 4}" y="{py(np.array(v)) + 4:.1f}" class="tick" text-anchor="end">{_num(v)}</text>')
    for v, anchor in ((x0, "start"), (x1, "end")):
        parts.append(f'<text x="{px(np.array(v)):.1f}" y="{height - 6}" class="tick" text-anchor="{anchor}">{_num(v)}</text>')
    if band:
        pts = [f"{a:.1f},{b:.1f}" for a, b in zip(px(xs[ok_b]), py(band[1][ok_b]))]
        pts += [f"{a:.1f},{b:.1f}" for a, b in zip(px(xs[ok_b])[::-1], py(band[0][ok_b])[::-1])]
        parts.append(f'<polygon points="{" ".join(pts)}" class="band"/>')
    if extra:
        yy = py(np.array(extra[0]))
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" class="floor"/>')
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(xs[ok]), py(ys[ok])))
    parts.append(f'<polyline points="{pts}" class="line"/>')
    if ok.sum() == 1:
        parts.append(f'<circle cx="{px(xs[ok])[0]:.1f}" cy="{py(ys[ok])[0]:.1f}" r="3" class="dot"/>')
    parts.append("</svg>")
    return "".join(parts)


def curve_names(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Numeric metric columns of a run's rows, loss first, in first-seen order."""
    names: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if k not in AXES and isinstance(v, (int, float)) and not isinstance(v, bool):
                names.setdefault(k)
    return sorted(names, key=lambda k: k != "loss")


def player(pid: str, frames: Sequence[tuple[str, str]], caption: str) -> str:
    """A slider + play button over (data URI, label) frames; the JS at the end of the page drives it.
    The first frame is in the markup, so the page shows something even with scripts off."""
    if not frames:
        return ""
    data = json.dumps([{"src": s, "label": lab} for s, lab in frames]).replace("</", "<\\/")  # raw text in <script>
    src, label = frames[0]
    return (f'<div class="player" id="{pid}"><p class="cap">{html.escape(caption)}</p>'
            f'<div class="ctl"><button type="button" id="{pid}-play">&#9654; Play</button>'
            f'<input type="range" id="{pid}-slider" min="0" max="{len(frames) - 1}" value="0" step="1" '
            f'aria-label="frame">'
            f'<output id="{pid}-label">{html.escape(label)}</output></div>'
            f'<img id="{pid}-img" data-index="0" src="{src}" alt="{html.escape(label)}">'
            f'<script type="application/json" id="{pid}-frames">{data}</script></div>')


def training_frames(run: Run, rows: Sequence[dict[str, Any]], limit: int = TRAIN_FRAMES) -> list[tuple[str, str]]:
    """(data URI, "step N · loss X") of up to ``limit`` evenly spaced logged preview grids."""
    samples, _ = logged_previews(run.path / "samples")
    steps = sorted(samples)
    cols = metric_columns(rows)
    picked = [steps[i] for i in frame_indices(len(steps), limit)]
    return [(data_uri(read_rgb(samples[s])), frame_label(s, loss_at(*cols, s))) for s in picked]


def sample_trajectory(run: Run, *, n: int | None = None, seed: int = 0, steps: int | None = None,
                      device: str | None = None, max_frames: int = TRAJ_FRAMES) -> tuple[list[tuple[str, str]], str]:
    """(frames, what they show) of a fixed-seed sampling run of the newest checkpoint: the x_t | x0
    frames of :func:`trajectory_frames` (the Sampler's export), nothing written into the run."""
    from genstudio.core.jobs import load_model

    model, ds, step = load_model(run, device)
    mod = ds.spec.modality
    n = int(n or (16 if mod.name == "image" else mod.preview_n))  # 16 images: a few MB, not tens
    if steps is None:
        steps = int(run.info().get("preview_steps", 0) or 0) or None
    states = []
    with torch.no_grad():
        for st in model.sample(n, seed=seed, steps=steps, every=1):
            states.append(type(st)(st.step, st.total, st.t, st.x.detach().cpu(),
                                   None if st.x0 is None else st.x0.detach().cpu(), st.extras))
    labels = [trajectory_label(s.step, s.total, s.t) for s in states]
    idx = frame_indices(len(states), max_frames)
    frames = [(data_uri(f), labels[i]) for i, f in zip(idx, trajectory_frames(states, max_frames=max_frames))]
    return frames, f"{n} samples from the checkpoint of step {step:,}, seed {seed}: noise (left) becomes data; " \
                   "the right half is the model's guess of the final sample at each step"


def eval_section(run: Run) -> str:
    """The newest evaluation as a table (value, 95 % interval, real-vs-real floor, which way is
    better) and, with several evaluated steps, each metric's curve over them with its interval band."""
    recs = load_evals(run)
    if not recs:
        return "<p class='note'>No evaluation stored. Run <code>genstudio eval RUN</code> (or the Metrics panel) " \
               "and export again to see sample-quality numbers here.</p>"
    last = recs[-1]
    rows = []
    for name, e in last["metrics"].items():
        label, better = METRIC_INFO.get(name, (name, ""))
        rows.append(f"<tr><td>{html.escape(label)} <span class='id'>{html.escape(name)}</span></td>"
                    f"<td class='num'>{html.escape(format_value(e, name=name))}</td>"
                    f"<td>{html.escape(reference_text(e))}</td><td>{html.escape(better)}</td>"
                    f"<td class='note'>{html.escape(str(e.get('note', '')))}</td></tr>")
    for name, why in (last.get("skipped") or {}).items():
        rows.append(f"<tr><td>{html.escape(name)}</td><td>skipped</td><td></td><td></td>"
                    f"<td class='note'>{html.escape(str(why))}</td></tr>")
    ex = (last.get("extractor") or {}).get("name", "")
    out = [f"<p>Checkpoint of step {last.get('step', 0):,}, n = {last.get('n')} samples against as many real "
           f"items{f', features: {html.escape(str(ex))}' if ex else ''}. Brackets: 95 % bootstrap interval; "
           "the floor is the same metric between two draws of real data (what a perfect model scores).</p>",
           "<table><tr><th>metric</th><th>value [95 % interval]</th><th>baseline</th><th>better</th>"
           "<th>note</th></tr>", *rows, "</table>"]
    steps = sorted({int(r.get("step", 0)) for r in recs})
    if len(steps) > 1:
        by_step = {int(r.get("step", 0)): r for r in recs}  # newest record of each step
        charts = []
        for name in (m for m in last["metrics"] if m not in NOT_QUALITY):
            es = [by_step[s]["metrics"].get(name) or {} for s in steps]
            ci = [clipped_interval(name, e) for e in es]  # as the table shows them: within the metric's range
            val, lo, hi = ([np.nan if v is None else float(v) for v in col]
                           for col in ([e.get("value") for e in es], [c[0] for c in ci], [c[1] for c in ci]))
            floor = es[-1].get("reference") if isinstance(es[-1].get("reference"), (int, float)) else None
            charts.append(svg_chart(steps, val, f"{name} over training", lo=lo, hi=hi, floor=floor))
        out.append(f"<div class='charts'>{''.join(charts)}</div>")
    return "".join(out)


CSS = """
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f6f7f9;color:#1d2127}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#c8cdd8}main{padding:8px 28px 40px;max-width:1180px}
section{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:12px 18px;margin:16px 0}
h2{font-size:18px;margin:4px 0 10px}table{border-collapse:collapse;font-size:14px}
td,th{border-bottom:1px solid #e6e8ee;padding:4px 10px;text-align:left;vertical-align:top}
.num{font-variant-numeric:tabular-nums;white-space:nowrap}.id{color:#7a8190;font-size:12px}
.note{color:#5b6270;font-size:13px}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));
gap:4px 18px}.grid .id{font-size:13px}.charts{display:flex;flex-wrap:wrap;gap:10px}
.chart .ct{font-size:13px;font-weight:600;fill:#1d2127}.chart .tick{font-size:11px;fill:#5b6270}
.chart .frame{fill:#fafbfc;stroke:#d3d7df}.chart .line{fill:none;stroke:#2f6fdf;stroke-width:1.6}
.chart .band{fill:#2f6fdf;opacity:.18}.chart .floor{stroke:#d9822b;stroke-dasharray:5 4}
.chart .dot{fill:#2f6fdf}.player img{max-width:100%;image-rendering:pixelated;background:#14161c;
border-radius:4px;min-width:320px}.ctl{display:flex;align-items:center;gap:12px;margin:6px 0}
.ctl input{flex:1;max-width:520px}.ctl output{font-variant-numeric:tabular-nums;min-width:170px}
button{font:inherit;padding:3px 12px;border-radius:5px;border:1px solid #9aa3b5;background:#fff;cursor:pointer}
.cap{margin:2px 0;color:#3b4150}footer{color:#7a8190;font-size:12px;padding:0 28px 20px}
"""

JS = """
(function(){
  var want = {};
  location.hash.replace(/^#/, '').split('&').forEach(function(kv){
    var p = kv.split('='); if (p[0]) want[p[0]] = parseInt(p[1], 10);
  });
  document.querySelectorAll('.player').forEach(function(box){
    var id = box.id, frames = JSON.parse(document.getElementById(id + '-frames').textContent);
    var img = document.getElementById(id + '-img'), label = document.getElementById(id + '-label');
    var slider = document.getElementById(id + '-slider'), play = document.getElementById(id + '-play');
    var timer = null;
    function show(i){
      i = Math.max(0, Math.min(frames.length - 1, i | 0));
      slider.value = i; img.src = frames[i].src; img.alt = frames[i].label;
      img.setAttribute('data-index', i); label.textContent = frames[i].label;
    }
    function stop(){ if (timer) { clearInterval(timer); timer = null; play.innerHTML = '&#9654; Play'; } }
    slider.addEventListener('input', function(){ stop(); show(+slider.value); });
    play.addEventListener('click', function(){
      if (timer) { stop(); return; }
      if (+slider.value >= frames.length - 1) show(0);
      play.innerHTML = '&#10074;&#10074; Pause';
      timer = setInterval(function(){
        if (+slider.value >= frames.length - 1) { stop(); return; }
        show(+slider.value + 1);
      }, 1000 / 12);
    });
    if (id in want && !isNaN(want[id])) show(want[id]);
  });
})();
"""


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def build_report(run: Run, out_dir: str | Path, *, trajectory: bool = True, n: int | None = None, seed: int = 0,
                 steps: int | None = None, device: str | None = None, progress: Progress | None = None) -> Path:
    """Write ``out_dir/index.html`` for ``run`` and return its path. ``trajectory`` samples the
    newest checkpoint (``n`` samples, ``seed``, ``steps``); a run that cannot be sampled gets a
    note instead, never a failed report. ``progress(stage, done, total)`` after each section."""
    info = run.info()
    rows = run.metrics()
    total, done = 4, 0

    def tick(stage: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(stage, done, total)

    esc = html.escape
    meta = [("plugin", info.get("plugin")), ("dataset", info.get("dataset")), ("status", info.get("status")),
            ("steps", f"{info.get('step', 0):,} of {info.get('steps', 0):,}"), ("seed", info.get("seed")),
            ("device", info.get("device")), ("faces", ", ".join(info.get("faces") or []) or None),
            ("training time", f"{float(info['elapsed']):.1f} s" if isinstance(info.get("elapsed"), (int, float)) else None)]
    cfg = info.get("config") or {}
    cfg_rows = "".join(f"<div><span class='id'>{esc(str(k))}</span> <b class='num'>{esc(json.dumps(v))}</b></div>"
                       for k, v in sorted(cfg.items()))
    summary = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in meta if v not in (None, ""))
    parts = [_section("Run", f"<table>{summary}</table>"),
             _section("Settings", f"<div class='grid'>{cfg_rows}</div>"
                      if cfg_rows else "<p class='note'>no settings recorded</p>")]
    steps_col = [float(r.get("step", np.nan)) for r in rows]
    charts = [svg_chart(steps_col, metric_columns(rows, k)[1], k) for k in curve_names(rows)]
    parts.append(_section("Training curves", f"<div class='charts'>{''.join(c for c in charts if c)}</div>"
                          if any(charts) else "<p class='note'>no metrics logged yet</p>"))
    tick("curves")
    train = training_frames(run, rows)
    parts.append(_section("Samples over training", player(
        "train", train, f"The preview grid logged during training ({len(train)} of them): drag the slider to watch "
        "the model learn.") or "<p class='note'>no previews logged</p>"))
    tick("previews")
    traj_html = ""
    if trajectory:
        try:
            frames, caption = sample_trajectory(run, n=n, seed=seed, steps=steps, device=device)
            traj_html = player("traj", frames, caption)
        except Exception as e:  # noqa: BLE001 - no checkpoint, a plugin that cannot sample: the page still says why
            traj_html = f"<p class='note'>no trajectory: {esc(f'{e.__class__.__name__}: {e}')}</p>"
        parts.append(_section("How a sample is made", traj_html))
    tick("trajectory")
    parts.append(_section("Sample quality", eval_section(run)))
    tick("metrics")
    title = f"{info.get('plugin')} on {info.get('dataset')}"
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)} · GenStudio report</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p>run {esc(run.id)}</p></header><main>{''.join(parts)}</main>"
            f"<footer>Written by GenStudio on {time.strftime('%Y-%m-%d %H:%M')}; self-contained, opens offline.</footer>"
            f"<script>{JS}</script></body></html>")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path
