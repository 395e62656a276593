"""The network: audio encoder -> condition predictor -> diffusion head (x0 prediction).

After StreamingTalker (arXiv 2511.14223, §3): a condition predictor (transformer) reads the
history window of past motion frames and the audio around the current chunk and predicts a
dynamic condition per chunk frame; a small diffusion head denoises the chunk given that
condition and the timestep, predicting the clean chunk x0. The transformer runs once per
chunk; only the small head runs at every DDIM step, which keeps CPU cost low.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from ..face import VISEME_CLASSES
from .config import ModelConfig


def sinusoid(x: torch.Tensor, dim: int, max_period: float) -> torch.Tensor:
    """Sinusoidal embedding of a real tensor [...] -> [..., dim] (Vaswani et al. 2017).

    Frequencies span 1 .. 1/max_period (geometric), as in DDPM's timestep embedding.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    a = x.float().unsqueeze(-1) * freqs
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


class Block(nn.Module):
    """Pre-LN transformer block (self-attention + GELU MLP), batch-first [B, T, d].

    Written out with ``scaled_dot_product_attention`` rather than ``nn.TransformerEncoderLayer``
    to keep per-call Python overhead low: on a CPU the diffusion head runs at every DDIM step.
    """

    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.h = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.p = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        p = self.p if self.training else 0.0
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        x = x + F.dropout(self.proj(a.transpose(1, 2).reshape(B, T, d)), p, self.training)
        h = F.dropout(F.gelu(self.fc1(self.ln2(x))), p, self.training)
        return x + F.dropout(self.fc2(h), p, self.training)


def _layer(d, heads, ff, dropout):
    return Block(d, heads, ff, dropout)


class MelEncoder(nn.Module):
    """Log-mel window [B, M, n_mels] -> per-frame features [B, M, C] (non-causal convs
    inside the window, which already ends at the chunk's look-ahead): a kernel-5 input
    convolution, then one residual kernel-5 convolution per entry of
    ``cfg.encoder_dilations`` (dilated as given), then LayerNorm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.encoder_channels
        self.register_buffer("mel_mean", torch.full((cfg.n_mels,), -5.0))
        self.register_buffer("mel_std", torch.full((cfg.n_mels,), 4.0))
        self.inp = nn.Conv1d(cfg.n_mels, c, 5, padding=2)
        self.convs = nn.ModuleList([nn.Conv1d(c, c, 5, padding=2 * d, dilation=d)
                                    for d in cfg.encoder_dilations])
        self.norm = nn.LayerNorm(c)

    def grow(self, dilations: list[int]) -> None:
        """Append one residual convolution per entry of ``dilations`` (ints >= 1), each with
        zero weights and bias, so the encoder computes exactly what it did before
        (``gelu(0) = 0``: the new layers add nothing until trained). A fine-tune that grows
        the encoder (``[model] encoder_dilations`` extended) starts from its parent's
        function (function-preserving growth, as in Net2Net, Chen et al. 2016)."""
        ref = self.inp.weight
        for d in dilations:
            conv = nn.Conv1d(ref.shape[0], ref.shape[0], 5, padding=2 * d, dilation=d)
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
            self.convs.append(conv.to(device=ref.device, dtype=ref.dtype))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = ((mel - self.mel_mean) / self.mel_std).transpose(1, 2)
        x = F.gelu(self.inp(x))
        for conv in self.convs:
            x = x + F.gelu(conv(x))
        return self.norm(x.transpose(1, 2))


class StreamTalkerNet(nn.Module):
    """Condition predictor + diffusion head.

    ``condition(feats, mel_offset, align_idx, align_w, history, style, drop_audio)``:
        feats: float32 [B, M, F] audio front-end features (log-mel, or pretrained-encoder
            features resampled to the mel grid), or [1, M, F] shared by all B rows (the
            encoder then runs once: classifier-free guidance's two rows hear the same
            audio); mel_offset: float32 [B], time of feats[:, 0]
            relative to the chunk's last frame (s); align_idx: int64 [B, K] and align_w:
            float32 [B, K], linear interpolation of each chunk frame's position in the window;
        history: float32 [B, H, D] normalized past frames (oldest first); style: int64 [B]
            (``n_styles`` = unknown); drop_audio: bool [B], replace audio by the learned null
            condition (classifier-free guidance).
        Returns cond float32 [B, K, d_model].
    ``denoise(x_t, t, cond, history)``: x_t [B, K, D] noisy chunk, t int64 [B] DDPM
        timesteps, cond [B, K, d], history [B, H, D] -> x0 prediction [B, K, D].
    """

    def __init__(self, cfg: ModelConfig, feat_dim: int | None = None):
        super().__init__()
        self.cfg = cfg
        d, D = cfg.d_model, cfg.dim
        self.frame_dt = 1.0 / cfg.fps
        self.mel_dt = cfg.hop_length / cfg.sample_rate
        feat_dim = feat_dim or cfg.n_mels
        self.encoder = MelEncoder(cfg) if cfg.speech_encoder is None else None
        if self.encoder is None:
            self.feat_proj = nn.Sequential(nn.Linear(feat_dim, cfg.encoder_channels), nn.GELU(),
                                           nn.LayerNorm(cfg.encoder_channels))
        c = cfg.encoder_channels
        self.audio_tok = nn.Linear(c, d)
        self.align_tok = nn.Linear(c, d)
        self.null_audio = nn.Parameter(torch.zeros(d))
        self.null_align = nn.Parameter(torch.zeros(d))
        self.hist_in = nn.Linear(D * cfg.history_pool, d)
        self.style = nn.Embedding(cfg.n_styles + 1, d)
        self.type_emb = nn.Parameter(torch.zeros(4, d))  # style, audio, history, query
        self.time_mlp = nn.Sequential(nn.Linear(64, d), nn.SiLU(), nn.Linear(d, d))
        self.predictor = nn.ModuleList([_layer(d, cfg.n_heads, cfg.predictor_ff, cfg.dropout)
                                        for _ in range(cfg.predictor_layers)])
        self.pred_norm = nn.LayerNorm(d)
        # diffusion head
        dh = cfg.head_dim
        self.x_in = nn.Linear(D, dh)
        self.c_in = nn.Linear(d, dh)
        self.t_mlp = nn.Sequential(nn.Linear(128, dh), nn.SiLU(), nn.Linear(dh, dh))
        self.head_pos = nn.Parameter(torch.zeros(cfg.history_prefix + cfg.max_chunk_frames, dh))
        self.head = nn.ModuleList([_layer(dh, cfg.n_heads, cfg.head_ff, cfg.dropout)
                                   for _ in range(cfg.head_layers)])
        self.out_norm = nn.LayerNorm(dh)
        self.out = nn.Linear(dh, D)
        # training-only auxiliary viseme classifiers (see ModelConfig.aux_viseme_weight)
        self.viseme_heads = None
        if cfg.aux_viseme_weight > 0:
            self.viseme_heads = nn.ModuleDict({"audio": nn.Linear(c, len(VISEME_CLASSES)),
                                               "cond": nn.Linear(d, len(VISEME_CLASSES))})
        # normalization of the output channels (data space <-> model space) and the rest pose
        self.register_buffer("data_mean", torch.zeros(D))
        self.register_buffer("data_std", torch.ones(D))
        self.register_buffer("rest_pose", torch.zeros(D))
        nn.init.normal_(self.type_emb, std=0.02)
        nn.init.normal_(self.head_pos, std=0.02)

    # -- condition predictor -------------------------------------------------------------
    def _time(self, rel_s: torch.Tensor) -> torch.Tensor:
        return self.time_mlp(sinusoid(rel_s * 100.0, 64, 10000.0))

    def audio_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Front-end features [B, M, F] -> encoder features [B, M, C]."""
        return self.encoder(feats) if self.encoder is not None else self.feat_proj(feats)

    def condition(self, feats, mel_offset, align_idx, align_w, history, style, drop_audio):
        return self._condition(feats, mel_offset, align_idx, align_w, history, style,
                               drop_audio)[0]

    def _condition(self, feats, mel_offset, align_idx, align_w, history, style, drop_audio):
        """(cond [B, K, d], encoder features [B, M, C])."""
        cfg = self.cfg
        B, H = history.shape[:2]
        M = feats.shape[1]
        K = align_idx.shape[1]
        dev = feats.device
        # [1 or B, M, C] -> [B, M, C]: one row of features serves every row
        enc = self.audio_features(feats).expand(B, -1, -1)
        P = cfg.audio_pool
        pooled = enc.reshape(B, M // P, P, -1).mean(2)
        a_tok = self.audio_tok(pooled)  # [B, M/P, d]
        i0 = align_idx.clamp(0, M - 1)
        i1 = (align_idx + 1).clamp(0, M - 1)
        g0 = torch.gather(enc, 1, i0.unsqueeze(-1).expand(-1, -1, enc.shape[-1]))
        g1 = torch.gather(enc, 1, i1.unsqueeze(-1).expand(-1, -1, enc.shape[-1]))
        w = align_w.unsqueeze(-1)
        q_tok = self.align_tok(g0 * (1 - w) + g1 * w)  # [B, K, d]
        drop = drop_audio.view(B, 1, 1)
        a_tok = torch.where(drop, self.null_audio.view(1, 1, -1), a_tok)
        q_tok = torch.where(drop, self.null_align.view(1, 1, -1), q_tok)

        a_time = mel_offset.view(B, 1) + (torch.arange(M // P, device=dev) * P + (P - 1) / 2) * self.mel_dt
        hp = cfg.history_pool
        Ht = H // hp
        # a history token holds hp consecutive frames; its time is their mean
        h_time = -((torch.arange(Ht, 0, -1, device=dev) * hp - (hp - 1) / 2) + (K - 1)) * self.frame_dt
        q_time = (torch.arange(K, device=dev) - (K - 1)) * self.frame_dt
        times = torch.cat([a_time, h_time.expand(B, Ht), q_time.expand(B, K)], dim=1)
        temb = self._time(times)
        s_tok = self.style(style).unsqueeze(1) + self.type_emb[0]
        toks = torch.cat([s_tok,
                          a_tok + self.type_emb[1] + temb[:, :M // P],
                          self.hist_in(history.reshape(B, Ht, -1)) + self.type_emb[2]
                          + temb[:, M // P:M // P + Ht],
                          q_tok + self.type_emb[3] + temb[:, M // P + Ht:]], dim=1)
        for layer in self.predictor:
            toks = layer(toks)
        return self.pred_norm(toks[:, -K:]), enc

    # -- diffusion head ------------------------------------------------------------------
    def timestep_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """DDPM timesteps int64 [B] -> [B, 1, head_dim] (cacheable per sampler timestep)."""
        return self.t_mlp(sinusoid(t.float(), 128, 10000.0)).unsqueeze(1)

    def denoise_prepare(self, cond: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """The part of the head input that is fixed over the DDIM loop, [B, P + K, head_dim]."""
        P, K = self.cfg.history_prefix, cond.shape[1]
        base = torch.cat([self.x_in(history[:, -P:]), self.c_in(cond)], dim=1)
        return base + self.head_pos[:P + K]

    def denoise_step(self, base: torch.Tensor, x_t: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """x0 prediction [B, K, D] from the prepared base, the noisy chunk and the t embedding."""
        P = self.cfg.history_prefix
        h = torch.cat([base[:, :P], base[:, P:] + self.x_in(x_t) + temb], dim=1)
        for layer in self.head:
            h = layer(h)
        return self.out(self.out_norm(h[:, P:]))

    def forward(self, feats, mel_offset, align_idx, align_w, history, style, drop_audio, x_t, t):
        """Training pass: condition predictor, then the diffusion head on R noised copies.

        ``x_t`` [R*B, K, D] and ``t`` [R*B] hold R noised versions of each of the B examples
        (example-major: rows r*B .. r*B+B-1 are copy r). Returns x0 [R*B, K, D], or with the
        auxiliary viseme heads ``(x0, audio_logits [B, M, V], cond_logits [B, K, V])``.
        (A ``forward`` so DistributedDataParallel sees the whole graph.)"""
        cond, enc = self._condition(feats, mel_offset, align_idx, align_w, history, style,
                                    drop_audio)
        logits = None
        if self.viseme_heads is not None:
            logits = (self.viseme_heads["audio"](enc), self.viseme_heads["cond"](cond))
        R = x_t.shape[0] // cond.shape[0]
        if R > 1:
            cond, history = cond.repeat(R, 1, 1), history.repeat(R, 1, 1)
        x0 = self.denoise(x_t, t, cond, history)
        return x0 if logits is None else (x0, *logits)

    def denoise(self, x_t, t, cond, history):
        return self.denoise_step(self.denoise_prepare(cond, history), x_t, self.timestep_embedding(t))
