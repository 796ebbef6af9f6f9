"""swintools: offline tools that turn Swin V1/V2 checkpoints into serving artifacts.

Modules (each CLI is `python -m swintools.<name> --help`, run from engines/):
  arch          architecture presets and build_model()
  checkpoint    strict loading of official / timm / safetensors weights
  wrapper       uint8 NHWC -> normalised NCHW inside the graph; run-time shift masks
  onnx_fold     the constant folder that makes the `fold` variant
  export        ONNX export, variants fold and unfold
  parity        ONNX Runtime vs PyTorch fp32 report
  fmnist        Fashion-MNIST reading and the service's resize, reproduced in torch
  train_fmnist  trains the default model swin-fmnist
  make_model_repo  writes engines/models/<name>/ (model.json, ONNX, self-test, report)
"""
