// The finder's two image operations, a line-by-line port of skinage/find/imaging.py (read its
// docstring for the exact arithmetic). Images are {data, width, height, mode: 'RGB'} as in
// ../resample.mjs; all arithmetic is float64 (JavaScript numbers, as NumPy's float64) and model
// inputs are rounded to float32 only at the very end (Float32Array).

import { resize } from '../resample.mjs';

/** Where an image of `source` = [W, H] sits in the square letterbox of side `size`. */
export class Letterbox {
  constructor(size, source, width, height, left, top) {
    Object.assign(this, { size, source, width, height, left, top });
    Object.freeze(this);
  }

  /** Letterbox coordinates (pixels of the square) -> image coordinates. */
  toImage(x, y) {
    const [W, H] = this.source;
    return [(x - this.left) * (W / this.width), (y - this.top) * (H / this.height)];
  }
}

/**
 * The image scaled by its long side into a black size x size square (Pillow's BILINEAR resize
 * with reducing_gap=None, pasted at the floor of the centre): {square: Uint8Array (size*size*3), lb}.
 */
export function letterbox(image, size) {
  const W = image.width;
  const H = image.height;
  const scale = size / Math.max(W, H);
  const w = Math.max(1, Math.floor(W * scale + 0.5));
  const h = Math.max(1, Math.floor(H * scale + 0.5));
  const left = Math.floor((size - w) / 2);
  const top = Math.floor((size - h) / 2);
  const resized = w === W && h === H ? image : resize(image, w, h, { filter: 'bilinear', reducingGap: null });
  const square = new Uint8Array(size * size * 3); // black
  for (let y = 0; y < h; y++) {
    square.set(resized.data.subarray(y * w * 3, (y + 1) * w * 3), ((y + top) * size + left) * 3);
  }
  return { square, lb: new Letterbox(size, [W, H], w, h, left, top) };
}

/** uint8 (n, n, 3) -> BlazeFace input float32 (1, 3, n, n) in [-1, 1]: px / 127.5 - 1. */
export function detectorTensor(square, n) {
  const out = new Float32Array(3 * n * n);
  const plane = n * n;
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[c * plane + i] = square[i * 3 + c] / 127.5 - 1.0;
  }
  return out;
}

/**
 * Bilinear samples of a turned square of `image` (RGB), as FaceMesh's float32 input
 * (1, 3, n, n) = sample / 255. The square has centre (cx, cy), side `side`, x axis (cos, sin);
 * outside the image counts as 0. The arithmetic (and its order) is imaging.warp_square's.
 */
export function warpSquareTensor(image, cx, cy, side, cos, sin, n) {
  const { data, width: W, height: H } = image;
  const step = side / n;
  const half = side / 2;
  const local = new Float64Array(n);
  for (let i = 0; i < n; i++) local[i] = (i + 0.5) * step - half;
  const plane = n * n;
  const out = new Float32Array(3 * plane);
  const px = (x, y, c) => (x >= 0 && x < W && y >= 0 && y < H ? data[(y * W + x) * 3 + c] : 0);
  for (let j = 0; j < n; j++) {
    const v = local[j];
    for (let i = 0; i < n; i++) {
      const u = local[i];
      const xs = cx + u * cos - v * sin - 0.5;
      const ys = cy + u * sin + v * cos - 0.5;
      const x0 = Math.floor(xs);
      const y0 = Math.floor(ys);
      const fx = xs - x0;
      const fy = ys - y0;
      const gx = 1.0 - fx;
      const gy = 1.0 - fy;
      for (let c = 0; c < 3; c++) {
        const top = px(x0, y0, c) * gx + px(x0 + 1, y0, c) * fx;
        const bottom = px(x0, y0 + 1, c) * gx + px(x0 + 1, y0 + 1, c) * fx;
        out[c * plane + j * n + i] = (top * gy + bottom * fy) / 255.0;
      }
    }
  }
  return out;
}

/**
 * Points (N x 3, flat: x, y, z) in the square's pixel coordinates (0..n) -> image pixels, through
 * the same transform; z (depth) scaled by side / n. Returns a new Float64Array.
 */
export function squareToImage(points, cx, cy, side, cos, sin, n) {
  const step = side / n;
  const half = side / 2;
  const out = new Float64Array(points.length);
  for (let k = 0; k < points.length; k += 3) {
    const u = points[k] * step - half;
    const v = points[k + 1] * step - half;
    out[k] = cx + u * cos - v * sin;
    out[k + 1] = cy + u * sin + v * cos;
    out[k + 2] = points[k + 2] * step;
  }
  return out;
}
