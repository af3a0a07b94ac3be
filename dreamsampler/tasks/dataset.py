"""Dataset runs: ``predict`` runs a whole DreamSampler optimization for each batch of dataset samples, with fault
isolation (a failing sample is reported, the dataset goes on)."""

from __future__ import annotations

import torch

from ..errors import InputError


class DatasetRuns:
    """``predict_step`` of ``DreamSamplerTask``: the same ``dream_step`` over the same schedule as ``fit``, for every
    batch of manifest items (``prepare_batch``, ``make_optimizers``, ``reverse_schedule`` come from the task)."""

    def predict_step(self, items: list[dict], batch_idx: int) -> list[dict]:
        """A whole DreamSampler run for a batch of dataset samples, through the same ``dream_step`` as ``fit``;
        returns ``{"name", "texts": {file key: text}, <image name>: (3, H, W)}`` per sample for the writer, or
        ``{"name", "error"}`` for a sample that failed (see ``predict_samples``)."""
        if torch.is_inference_mode_enabled():
            raise InputError("predict optimizes psi: run it with Trainer(inference_mode=False) "
                             "(the dreamsampler CLI's default)")
        return self.predict_samples(items)

    def predict_samples(self, items: list[dict]) -> list[dict]:
        """Fault isolation: a batch that fails (unreadable file, divergence, out of memory, ...) is run again one
        sample at a time, and a sample that fails alone is reported as ``{"name", "error"}`` while the rest of the
        dataset goes on. Each sample's noise is keyed by its name, so its result does not depend on its batch."""
        try:
            return self._predict_batch(items)
        except Exception as err:       # noqa: BLE001 - any failure of one sample must not stop the dataset
            if isinstance(err, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            if len(items) == 1:
                return [{"name": items[0].get("name", "?"), "error": f"{type(err).__name__}: {err}"}]
        return [result for item in items for result in self.predict_samples([item])]

    def _predict_batch(self, items: list[dict]) -> list[dict]:
        self.prepare_batch(self.load_batch(items))
        optimizers, schedulers = self.make_optimizers()
        with torch.enable_grad():
            for step in self.reverse_schedule():
                self.dream_step(step, optimizers, schedulers)
        self.last_z0_hat = None
        with torch.no_grad():
            images, texts = self.result_images(), self.result_texts()
        results = []
        for b, name in enumerate(self.sample_names):
            one = {k: v[b].cpu() for k, v in images.items()}
            if not all(bool(torch.isfinite(v).all()) for v in one.values()):
                results.append({"name": name, "error": "DivergedError: the result is not finite (NaN/inf)"})
                continue
            results.append({"name": name, "texts": {k: v[b] for k, v in texts.items()}, **one})
        return results
