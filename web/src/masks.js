// Mask post-processing in the page, as segany's Sam.postprocess_masks does it in torch:
// low-res logits (L x L, in the padded S x S encoder frame) -> bilinear to S x S -> crop
// to the resized image (inH x inW) -> bilinear to the image (H x W) -> threshold.
// Bilinear is torch's align_corners=False, done separably in float32.

function axis(inSize, outSize) {
  // for each output index: the two source indices and the weight of the second
  const i0 = new Int32Array(outSize), i1 = new Int32Array(outSize), w = new Float32Array(outSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    let src = (o + 0.5) * scale - 0.5;
    if (src < 0) src = 0;
    const a = Math.min(Math.floor(src), inSize - 1);
    i0[o] = a;
    i1[o] = Math.min(a + 1, inSize - 1);
    w[o] = src - a;
  }
  return { i0, i1, w };
}

// Resize the (inH x inW) region at the top-left of a (rows x cols) plane, as if the plane
// were first scaled to (fullH x fullW): used to fuse "upscale then crop". With `level`, the
// output is the thresholded mask (Uint8Array, 1 where the value > level) and no float plane
// of the output's size is made: for large images that halves the time and saves 4 bytes a
// pixel.
export function resize(src, rows, cols, outH, outW, fromH = outH, fromW = outW, level = null) {
  // src: Float32Array rows*cols; the output samples the plane scaled to (fromH x fromW)
  // on its top-left (outH x outW) part when fromH/fromW are given
  const ax = axis(cols, fromW), ay = axis(rows, fromH);
  const tmp = new Float32Array(rows * outW);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let x = 0; x < outW; x++) {
      const a = src[base + ax.i0[x]], b = src[base + ax.i1[x]];
      tmp[r * outW + x] = a + (b - a) * ax.w[x];
    }
  }
  const out = level === null ? new Float32Array(outH * outW) : new Uint8Array(outH * outW);
  for (let y = 0; y < outH; y++) {
    const r0 = ay.i0[y] * outW, r1 = ay.i1[y] * outW, wy = ay.w[y], row = y * outW;
    if (level === null) {
      for (let x = 0; x < outW; x++) {
        const a = tmp[r0 + x], b = tmp[r1 + x];
        out[row + x] = a + (b - a) * wy;
      }
    } else {
      // Math.fround: the same float32 rounding as the stored plane above
      for (let x = 0; x < outW; x++) {
        const a = tmp[r0 + x], b = tmp[r1 + x];
        out[row + x] = Math.fround(a + (b - a) * wy) > level ? 1 : 0;
      }
    }
  }
  return out;
}

// Full-size logits (H x W) of one low-res mask; with `level`, the mask thresholded there.
export function upscale(low, lowSize, encoderSize, inputSize, imageSize, level = null) {
  const [inH, inW] = inputSize, [H, W] = imageSize;
  const framed = resize(low, lowSize, lowSize, inH, inW, encoderSize, encoderSize);
  return resize(framed, inH, inW, H, W, H, W, level);
}

export function threshold(logits, level = 0.0) {
  const mask = new Uint8Array(logits.length);
  for (let i = 0; i < logits.length; i++) mask[i] = logits[i] > level ? 1 : 0;
  return mask;
}

// The page's masks leave as COCO RLE (uncompressed counts): see rle.js.
export { toRle } from "./rle.js";
