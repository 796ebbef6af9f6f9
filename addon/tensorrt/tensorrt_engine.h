// The tensorrt backend: runs a serialized TensorRT (>= 10) engine, a ".plan"
// built by engines/build_trt_plans.sh on the GPU it runs on.
//
// The factory, swin::createTensorRTEngine (engine.h), is defined in
// tensorrt_engine.cc, which is compiled only where CMake found TensorRT.
//
// Plan contract (what the ONNX export and trtexec produce):
//   one input   uint8  [N, H, W, 3]  (NHWC RGB, N dynamic or fixed), named per model.json
//   one output  float  [N, C]        logits
//   optimisation profiles over N; concurrent execution contexts need distinct
//   profiles, so a plan for `instances` contexts carries `instances` profiles.
#pragma once

#include <string>

namespace swin {

// Version of the libnvinfer this process loaded, e.g. "10.16.1".
std::string tensorrtLibraryVersion();

}  // namespace swin
