"""Segmentation: the nuclei data, losses and metrics, the U-Net baselines, one training recipe,
dense zero-cost proxies on the hybrid supernet, latency tables and zero-shot search
(docs/segmentation.md)."""

from jnas.seg import latency, losses, proxies, search
from jnas.seg.baselines import BASELINES, UNet, baseline
from jnas.seg.data import SegData, load_nuclei
from jnas.seg.proxies import PROXIES, aggregate
from jnas.seg.train import SegTrainConfig, fit, predict

__all__ = ["BASELINES", "PROXIES", "SegData", "SegTrainConfig", "UNet", "aggregate", "baseline", "fit", "latency",
           "load_nuclei", "losses", "predict", "proxies", "search"]
