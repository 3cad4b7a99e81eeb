"""Replay a loss's small trainable step from a CUDA graph.

A loss's own trainable part (VDM's M_ψ: a ~0.9 M-parameter U-Lite) costs little arithmetic but
hundreds of small kernel launches per step; on a GPU those launches, not the arithmetic, set its
time (measured on an H200: 12 ms per ψ update against 29 ms for SD's CFG UNet call; see
``benchmarks/operator_gpu.py``). Capturing the whole update (forward, backward, optimiser step)
once and replaying it removes the launch overhead without changing the arithmetic.

:class:`CapturedStep` wraps ``fn(*tensors) -> tuple[Tensor, ...]``. The first ``warmup`` calls run
eagerly on a side stream (CUDA-graph capture needs the lazily created optimiser state and cuDNN
handles to exist already); the next call captures ``fn`` on copies of its inputs and replays it;
later calls copy their inputs in and replay. A change of input shapes or dtypes starts over. The
optimiser stepped inside ``fn`` must be built with ``capturable=True``. CPU tensors are passed to
``fn`` directly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class CapturedStep:
    def __init__(self, fn: Callable[..., tuple[Tensor, ...]], warmup: int = 3):
        self.fn = fn
        self.warmup = warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self._key: tuple | None = None
        self._eager_calls = 0
        self._inputs: list[Tensor] = []
        self._outputs: tuple[Tensor, ...] = ()

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def reset(self) -> None:
        """Forget the graph (e.g. after the optimiser's state tensors were replaced by a load)."""
        self.graph, self._key, self._eager_calls = None, None, 0

    def __call__(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if not inputs[0].is_cuda:
            return self.fn(*inputs)
        key = tuple((x.shape, x.dtype, x.device) for x in inputs)
        if key != self._key:
            self.reset()
            self._key = key
        if self.graph is None and self._eager_calls < self.warmup:
            self._eager_calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.fn(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self.graph is None:
            self._inputs = [x.detach().clone() for x in inputs]
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._outputs = self.fn(*self._inputs)
            self.graph = graph  # capture records; the replay below runs this call
        else:
            for static, x in zip(self._inputs, inputs):
                static.copy_(x)
        self.graph.replay()
        return tuple(o.clone() for o in self._outputs)
