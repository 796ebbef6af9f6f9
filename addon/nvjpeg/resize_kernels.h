// Resize + centre crop of decoded RGB images on the GPU, with the EXIF
// orientation applied on the fly, for the GPU JPEG path (jpeg_decoder.cc).
//
// Geometry is src/decode/preprocess.ts's, for the model's preprocess block:
//   squash:             oriented W x H -> size x size
//   shorter_side_crop:  shorter side -> resize (longer side floored, torchvision
//                       Resize(int)), then a centre crop of size x size, offsets
//                       Math.round((n - size) / 2)
// Filter: separable, libvips-reduce style (what sharp runs): output pixel i of
// an axis of L -> N samples is centred at c = (i + 0.5) * L / N - 0.5 when
// shrinking, c = i * L / N - 0.5 when enlarging (sharp's affine); taps j
// weigh K((j - c) / f) with f = max(L / N, 1) (the kernel widens when
// shrinking, so it antialiases), edge samples repeat, weights normalised,
// vertical pass first into a uint8 intermediate (libvips also rounds between
// the passes when shrinking), round half up. K: nearest, linear (triangle, radius 1), cubic
// (Catmull-Rom), mitchell (B = C = 1/3), lanczos2, lanczos3.
// Known differences from sharp: libvips box-shrinks by an integer factor first
// when the reduction is 3x or more, and sharp lets libjpeg decode at 1/2..1/8
// scale for large reductions; both change pixels of large photographs (see
// docs/gpu-decode.md for the measured difference).
#pragma once

#include <cstdint>

namespace swin {

enum class ResizeKernel : int { Nearest = 0, Linear = 1, Cubic = 2, Mitchell = 3, Lanczos2 = 4, Lanczos3 = 5 };

// Where one oriented image lands: resized to nw x nh, window (left, top, out x out) kept.
struct ResizeGeometry {
  int nw = 0, nh = 0;
  int left = 0, top = 0;
  int out = 0;
};

// Oriented (display) width/height; orientations 5..8 swap the stored sides.
inline void orientedSize(int stored_w, int stored_h, int orientation, int* w, int* h) {
  const bool swap = orientation >= 5 && orientation <= 8;
  *w = swap ? stored_h : stored_w;
  *h = swap ? stored_w : stored_h;
}

// Same arithmetic as src/decode/preprocess.ts (`squash`: resize == out, no crop).
ResizeGeometry resizeGeometry(int w, int h, bool squash, int resize, int out);

#ifdef SWIN_HAVE_CUDA
// src: stored (un-oriented) RGB interleaved, stored_w x stored_h, `pitch` bytes a row.
// tmp: at least oriented_w * g.out * 3 floats. dst: g.out * g.out * 3 bytes (NHWC, one image).
// Enqueued on `stream`; throws EngineError on a launch failure.
void launchResizeOriented(const uint8_t* src, int stored_w, int stored_h, int pitch, int orientation,
                          const ResizeGeometry& g, ResizeKernel kernel, float* tmp, uint8_t* dst, void* stream);
#endif

}  // namespace swin
