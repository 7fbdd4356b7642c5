"""A Stable-Diffusion-shaped pipeline (Rombach et al. 2022) at small scale, on captioned shapes.

prompt -> tokens (the dataset's WordLevel tokenizer) -> text encoder -> U-Net denoiser with
cross-attention (``genstudio.core.nn.text_unet``) <-> any of the DDPM samplers -> VAE decoder.

- It *is* the latent-diffusion plugin (subclass): the VAE is a trained ``vae_run`` or one trained on
  the fly, its vector latent (``vae_latent`` = C x grid x grid numbers) seen by the U-Net as a
  C x grid x grid map. The VAE plugin's latent is a dense vector, so the grid has no spatial meaning
  beyond what the U-Net learns (honest caveat: SD's VAE is convolutional).
- The text encoder is a trained ``clip`` run's, frozen (``text_run``), or a small
  :class:`~genstudio.core.nn.text.TextEncoder` trained jointly (``text_run`` empty).
- Classifier-free guidance by caption dropout: a dropped caption is the null caption "" = [EOS],
  exactly what ``sample(prompt=None)`` feeds. The null caption never goes through the text encoder:
  :class:`TextContext` maps it to a learned null embedding, so the unconditional branch (and any
  sample at guidance 1 without a prompt) does not depend on the text encoder's weights at all.

:class:`TextDiffusion` (the conditioning, CFG, attention extras) is shared with the imagen plugin.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from genstudio_plugins.ddpm import DDPMPlugin
from genstudio_plugins.ldm import LDMConfig, LDMPlugin
from torch import Tensor, nn

from genstudio.core.config import param
from genstudio.core.data import DataSpec, get_dataset
from genstudio.core.data.captions import CaptionsDataset
from genstudio.core.diffusion import q_sample
from genstudio.core.imaging import readable_scale, to_uint8
from genstudio.core.latent import labelled_grid
from genstudio.core.nn import ema_decay_at, ema_update
from genstudio.core.nn.ema import ema_copy
from genstudio.core.nn.text import TextEncoder
from genstudio.core.nn.text_unet import TextUNet
from genstudio.core.nn.unet import default_mults
from genstudio.core.plugin import PluginInfo, SampleOption, SampleState, final_state
from genstudio.core.text import Tokenizer

PREVIEW_PROMPTS = ("a red circle", "a blue square", "two triangles", "a yellow circle left of a red square")


class TextContext(nn.Module):
    """Token ids -> (context tokens (B, L, width), pad mask (B, L)). Rows that are the null caption
    ([EOS] then padding) get a learned null embedding at the EOS position instead of the encoder's
    output, so the unconditional branch is independent of the text encoder."""

    def __init__(self, encoder: TextEncoder, trainable: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.trainable = trainable
        encoder.requires_grad_(trainable)
        self.null = nn.Parameter(torch.randn(1, 1, encoder.width) * 0.02)

    @property
    def width(self) -> int:
        return self.encoder.width

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        eos = self.encoder.eos_id
        null = ids[:, 0] == eos
        if self.trainable:
            ctx, pad = self.encoder(ids)
        else:
            with torch.no_grad():
                ctx, pad = self.encoder(ids)
        if null.any():
            null_ctx = torch.zeros_like(ctx[:1])
            null_ctx[:, :1] = self.null
            ctx = torch.where(null[:, None, None], null_ctx.expand_as(ctx), ctx)
        return ctx, pad


class TextDiffusion:
    """Text conditioning for a DDPM-family plugin: the tokenizer, :class:`TextContext`, caption
    dropout, classifier-free guidance over text, the attention maps of the conditional branch, and
    the contract's ``attn`` / ``tokens`` extras. Mixed in before :class:`DDPMPlugin`."""

    tokenizer: Tokenizer
    text: TextContext
    _attn: Tensor | None = None

    def _setup_text(self, data: DataSpec) -> None:
        ds = get_dataset(data.name.split(":")[0])
        if not isinstance(ds, CaptionsDataset):
            raise ValueError(f"{data.name} has no captions; train on captions or captions16")
        c = self.config  # type: ignore[attr-defined]
        clip = self.run_model("text_run")  # type: ignore[attr-defined]
        if clip is not None:
            self.tokenizer = clip.text_tokenizer()
            encoder, trainable = clip.net.text, False
        else:
            self.tokenizer = ds.tokenizer
            tok = self.tokenizer
            encoder = TextEncoder(tok.vocab_size, tok.max_len, c.text_width, c.text_layers, 4, tok.eos_id)
            trainable = True
        self.text = TextContext(encoder, trainable).to(self.device)  # type: ignore[attr-defined]
        self.null_ids = self.tokenizer.encode("").to(self.device)  # type: ignore[attr-defined]

    def text_net(self, in_ch: int, size: int, out_ch: int | None = None) -> TextUNet:
        c = self.config  # type: ignore[attr-defined]
        mults = default_mults(size)
        return TextUNet(in_ch, self.text.width, c.channels, mults, c.num_res, out_ch=out_ch,
                        heads=c.heads).to(self.device)  # type: ignore[attr-defined]

    def text_tokenizer(self) -> Tokenizer:
        return self.tokenizer

    def drop_captions(self, ids: Tensor, p: float) -> Tensor:
        """Each caption replaced by the null caption with probability ``p`` (CFG training)."""
        drop = torch.rand(ids.shape[0], device=ids.device) < p
        return torch.where(drop[:, None], self.null_ids.expand_as(ids), ids)

    def prompt_ids(self, prompt: Sequence[str] | str | None, n: int) -> Tensor:
        """(n, L) ids of the prompts cycled over n samples; None / "" = the null caption."""
        if isinstance(prompt, str):
            prompt = [prompt]
        if not prompt:
            return self.null_ids.expand(n, -1).clone()
        return self.tokenizer.encode([prompt[i % len(prompt)] for i in range(n)]).to(self.device)  # type: ignore

    def _labels(self, cond: Any, n: int) -> Tensor | None:
        """The DDPM sampler's ``cond`` is the prompt's token ids here (None = the null caption)."""
        if cond is None:
            return self.null_ids.expand(n, -1)
        ids = torch.as_tensor(cond, dtype=torch.long, device=self.device)  # type: ignore[attr-defined]
        return ids.expand(n, -1) if ids.dim() == 1 or ids.shape[0] == 1 else ids

    def eps_loss(self, net: TextUNet, x0: Tensor, ctx: Tensor, pad: Tensor, extra: Tensor | None = None) -> Tensor:
        """The simple epsilon loss of a text-conditioned net; ``extra`` channels (a low-res image)
        are concatenated to the noisy input."""
        t = torch.randint(0, self.sched.T, (x0.shape[0],), device=x0.device)  # type: ignore[attr-defined]
        noise = torch.randn_like(x0)
        xt = q_sample(x0, t, noise, self.sched)  # type: ignore[attr-defined]
        inp = xt if extra is None else torch.cat([xt, extra], 1)
        return F.mse_loss(net(inp, self._time(t), ctx, pad), noise)  # type: ignore[attr-defined]

    def optimise(self, loss: Tensor, step: int, pairs: Sequence[tuple[nn.Module, nn.Module]]) -> dict[str, float]:
        """One Adam step on ``loss`` (gradient clipped) and the EMA update of each (ema, net) pair."""
        c = self.config  # type: ignore[attr-defined]
        params = [p for g in self.opt.param_groups for p in g["params"]]  # type: ignore[attr-defined]
        self.opt.zero_grad(set_to_none=True)  # type: ignore[attr-defined]
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, c.grad_clip if c.grad_clip > 0 else float("inf"))
        self.opt.step()  # type: ignore[attr-defined]
        for ema, net in pairs:
            ema_update(ema, net, ema_decay_at(step, c.ema_decay))
        return {"loss": float(loss.detach()), "grad_norm": float(gn)}

    def guided(self, net: TextUNet, x: Tensor, time: Tensor, ids: Tensor, w: float,
               extra: Tensor | None = None) -> Tensor:
        """CFG over text: eps_null + w (eps_cond - eps_null); w = 1 one conditional call, w = 0 one
        null call. Keeps the conditional branch's attention maps for the extras."""
        inp = x if extra is None else torch.cat([x, extra], 1)
        n = x.shape[0]
        if w == 0.0:
            ids = self.null_ids.expand(n, -1)
        if w in (0.0, 1.0):
            ctx, pad = self.text(ids)
            eps = net(inp, time, ctx, pad)
            self._attn = net.attention_maps()
            return eps
        ctx, pad = self.text(torch.cat([ids, self.null_ids.expand(n, -1)]))
        both = net(torch.cat([inp, inp]), torch.cat([time, time]), ctx, pad)
        maps = net.attention_maps()
        self._attn = None if maps is None else maps[:n]
        eps_c, eps_u = both.chunk(2)
        return eps_u + w * (eps_c - eps_u)

    def token_strings(self, ids: Tensor) -> list[list[str]]:
        """The contract's "tokens": one string per position, "<eos>" for EOS, "" for padding."""
        vocab = {i: w for w, i in self.tokenizer.tok.get_vocab().items()}  # type: ignore[attr-defined]
        pad = self.tokenizer.padding_mask(ids.cpu())
        return [["" if p else ("<eos>" if i == self.tokenizer.eos_id else vocab.get(i, "?"))
                 for i, p in zip(row.tolist(), prow.tolist())] for row, prow in zip(ids.cpu(), pad)]

    def text_extras(self, ids: Tensor) -> dict[str, Any]:
        out: dict[str, Any] = {"tokens": self.token_strings(ids)}
        if self._attn is not None:
            out["attn"] = self._attn.float().cpu()
        return out

    @torch.no_grad()
    def views(self) -> dict[str, Any]:
        """"prompts": two samples for each fixed preview prompt (its row label), at the config's
        guidance and the preview's step count: what the training monitor shows next to the loss."""
        k = 2
        prompts = [p for p in PREVIEW_PROMPTS for _ in range(k)]
        steps = min(50, getattr(self, "preview_steps", None) or 25)
        x = final_state(self.sample(len(prompts), seed=0, prompt=prompts, steps=steps)).x  # type: ignore
        scale = readable_scale(*x.shape[-2:], cell=48)
        tiles = to_uint8(x.cpu()).transpose(0, 2, 3, 1).repeat(scale, 1).repeat(scale, 2)
        title = f"fixed prompts, guidance {self.config.guidance:g}, {steps} steps"  # type: ignore[attr-defined]
        return {"prompts": labelled_grid(tiles, k, list(PREVIEW_PROMPTS), [f"sample {i + 1}" for i in range(k)], title)}

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "tokenizer": self.tokenizer.to_json()}  # type: ignore[misc]

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)  # type: ignore[misc]
        if "tokenizer" in state:
            self.tokenizer = Tokenizer.from_json(state["tokenizer"])


@dataclass
class SDConfig(LDMConfig):
    """Latent diffusion settings plus the text encoder and the cross-attention U-Net."""

    text_run: str = param("", "Trained CLIP run whose text encoder is used frozen (empty = a small text "
                          "encoder trained jointly)", runs_of=("clip",))
    text_width: int = param(64, "Jointly trained text encoder: width", range=(8, 512))
    text_layers: int = param(2, "Jointly trained text encoder: transformer layers", range=(1, 8))
    heads: int = param(4, "Cross-attention heads", range=(1, 16))
    latent_grid: int = param(4, "The VAE latent seen by the U-Net as C x grid x grid (vae_latent = C grid^2)",
                             range=(1, 16))
    vae_latent: int = param(64, "On-the-fly VAE: latent dimensions", range=(1, 512))
    vae_steps: int = param(1500, "On-the-fly VAE: training steps in setup", range=(1, 1_000_000))
    channels: int = param(32, "U-Net base channels", range=(4, 512))
    cond_drop: float = param(0.1, "Caption dropout: probability a caption is replaced by the null caption "
                             "(trains the unconditional branch for guidance)", range=(0.0, 1.0), live=True)
    guidance: float = param(3.0, "Classifier-free guidance scale when a sample asks for none", range=(0.0, 20.0))

    @classmethod
    def tiny(cls) -> SDConfig:
        base = LDMConfig.tiny()
        keep = {f.name: getattr(base, f.name) for f in fields(LDMConfig)}
        return cls(**keep | {"vae_latent": 16, "vae_steps": 3, "channels": 8}, text_width=16, text_layers=1,
                   heads=2, latent_grid=4)


class SDPlugin(TextDiffusion, LDMPlugin):
    info = PluginInfo(
        id="sd", name="Stable-Diffusion-shaped", family="diffusion", config_cls=SDConfig,
        data_kinds=("captioned",), samplers=DDPMPlugin.info.samplers,
        description="Latent diffusion with a cross-attention U-Net on text tokens (frozen CLIP text encoder or "
                    "one trained jointly), classifier-free guidance by caption dropout, VAE decoder.",
    )
    config: SDConfig
    sample_options = DDPMPlugin.sample_options[:1] + (
        SampleOption("guidance", "Classifier-free guidance scale over the prompt: 0 = unconditional, "
                     "1 = conditional, >1 = stronger prompt fidelity", 3.0, (0.0, 20.0)),
    ) + DDPMPlugin.sample_options[2:]

    def setup(self, data: DataSpec) -> None:
        c = self.config
        ch = c.vae_latent // (c.latent_grid * c.latent_grid)
        if ch * c.latent_grid**2 != c.vae_latent:
            raise ValueError(f"vae_latent {c.vae_latent} is not C x {c.latent_grid}^2")
        super().setup(data)  # the VAE, latent_std and the DDPM state (its vector net is replaced below)
        self.latent_shape = (ch, c.latent_grid, c.latent_grid)
        self.data = DataSpec(f"{data.name}:latent", "latent", self.latent_shape)
        self._setup_text(data)
        self.net = self.text_net(ch, c.latent_grid)
        self.ema = ema_copy(self.net)
        trainable = [p for p in self.text.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam([*self.net.parameters(), *trainable], lr=c.lr)

    def _check_vae(self, vae: Any, data: DataSpec) -> Any:
        vae = super()._check_vae(vae, data)
        if vae.config.latent_dim != self.config.vae_latent:
            raise ValueError(f"VAE run has {vae.config.latent_dim} latents; set vae_latent to match")
        return vae

    def to_latent(self, x: Tensor) -> Tensor:
        return super().to_latent(x).reshape(x.shape[0], *self.latent_shape)

    def to_image(self, z: Tensor) -> Tensor:
        return super().to_image(z.reshape(z.shape[0], -1))

    def train_step(self, batch: Tensor, labels: Tensor | None, step: int) -> dict[str, float]:
        if labels is None or labels.dim() != 2:
            raise ValueError("sd needs caption token ids as labels (a captioned dataset)")
        z = self.to_latent(batch)
        self.x_absmax = max(self.x_absmax, float(z.abs().max()))
        ctx, pad = self.text(self.drop_captions(labels.to(self.device), self.config.cond_drop))
        return self.optimise(self.eps_loss(self.net, z, ctx, pad), step, [(self.ema, self.net)])

    def guided_eps(self, x: Tensor, time: Tensor, y: Tensor | None, guidance: float = 1.0) -> Tensor:
        return self.guided(self.ema, x, time, self._labels(y, x.shape[0]), float(guidance))

    def sample(self, n: int, *, seed: int, prompt: Sequence[str] | str | None = None,
               guidance: float | None = None, **kw: Any) -> Iterator[SampleState]:
        """The DDPM samplers in latent space with the prompt's ids as ``cond``; every state decoded
        and annotated with the contract's extras (attn, tokens, stages)."""
        kw.pop("cond", None)
        ids = self.prompt_ids(prompt, n)
        w = self.config.guidance if guidance is None else float(guidance)
        states = super().sample(n, seed=seed, cond=ids, guidance=w, **kw)
        return self._annotated(states, ids)

    def _annotated(self, states: Iterator[SampleState], ids: Tensor) -> Iterator[SampleState]:
        with torch.no_grad():
            ctx, _ = self.text(ids)
        for st in states:
            ex = {**st.extras, **self.text_extras(ids)}
            ex["stages"] = {"tokens": ids.cpu(), "text encoder": ctx.cpu(), "denoiser": st.extras["latent"].cpu(),
                            "VAE decoder": (st.x0 if st.x0 is not None else st.x).cpu()}
            yield SampleState(st.step, st.total, st.t, st.x, st.x0, ex)

    def pipeline_stages(self) -> list[tuple[str, str]]:
        c = self.config
        text = f"clip run {c.text_run} (frozen)" if c.text_run else \
            f"transformer {c.text_layers}x{c.text_width}, trained jointly"
        vae = f"vae run {c.vae_run}" if c.vae_run else f"VAE trained on the fly ({c.vae_steps} steps)"
        return [("prompt", "text"), ("tokens", f"WordLevel, {self.tokenizer.max_len} ids"), ("text encoder", text),
                ("denoiser", f"U-Net + cross-attention on a {'x'.join(map(str, self.latent_shape))} latent"),
                ("scheduler", f"{c.schedule} {c.timesteps}-step chain; ddim {c.sample_steps} steps by default"),
                ("VAE decoder", vae)]


PLUGIN = SDPlugin
