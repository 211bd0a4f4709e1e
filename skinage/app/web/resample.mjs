// Pillow's image resizing, ported to JavaScript so that a page computes the same 8-bit pixels as
// Python's `PIL.Image.resize` (Pillow 13.0: `Image.resize`, `Image.reduce`, and the C code of
// src/libImaging/Resample.c, Reduce.c and Geometry.c's nearest-neighbour scaling). Canvas
// `drawImage` is a different filter (mean 0.5 grey levels apart, up to 16), enough to change a
// classifier's answer on near-ties; this module is bit-exact instead (tests/test_app_pixels.py
// compares it with Pillow pixel by pixel).
//
// An image is `{data, width, height, mode}`: `data` a Uint8Array / Uint8ClampedArray of
// `width * height * channels` interleaved bytes, `mode` one of 'L' (1 channel), 'RGB' (3),
// 'RGBX' (4, the fourth channel resampled like the others) or 'RGBA' (4, straight alpha: as in
// Pillow, premultiplied before resampling and divided back after).
//
// Exactness notes (why the arithmetic below is written the way it is):
// * Pillow passes the `box` to C as float32: every box coordinate goes through Math.fround, and
//   `in1 - in0` is a float32 subtraction before it becomes the double `scale`.
// * Filter weights are computed in double exactly as the C code does (same operation order, a
//   multiplication by the reciprocal of the filter scale), normalised to sum 1, then turned into
//   fixed point with PRECISION_BITS = 22 and truncated after adding +-0.5.
// * Sums are integers below 2^53, so doubles hold them exactly; `ss | 0` wraps to int32 like C's
//   int accumulator and `>> 22` is C's arithmetic shift; the result is clipped to 0..255.
// * The two passes (horizontal then vertical, or vertical first when the height shrinks more
//   than twice as much as the width) each round to 8 bits, so the pass order matters and follows
//   Pillow's rule.
// * bilinear, bicubic, box and nearest use + - * / only and are exact. hamming and lanczos call
//   sin / cos, whose last bit may differ between V8 and the C library: near-exact only.

const PRECISION_BITS = 22; // 32 - 8 - 2
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;
const f32 = Math.fround;

const CHANNELS = { L: 1, RGB: 3, RGBX: 4, RGBA: 4, RGBa: 4 };

function boxFilter(x) {
  return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
}

function bilinearFilter(x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

function hammingFilter(x) {
  if (x < 0.0) x = -x;
  if (x === 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * Math.PI;
  return (Math.sin(x) / x) * (f32(0.54) + f32(0.46) * Math.cos(x));
}

function bicubicFilter(x) {
  const a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

function sincFilter(x) {
  if (x === 0.0) return 1.0;
  x = x * Math.PI;
  return Math.sin(x) / x;
}

function lanczosFilter(x) {
  if (-3.0 <= x && x < 3.0) return sincFilter(x) * sincFilter(x / 3);
  return 0.0;
}

/** Filters by name, with Pillow's support radius (also Image._filters_support). */
export const FILTERS = Object.freeze({
  nearest: null,
  box: { fn: boxFilter, support: 0.5 },
  bilinear: { fn: bilinearFilter, support: 1.0 },
  hamming: { fn: hammingFilter, support: 1.0 },
  bicubic: { fn: bicubicFilter, support: 2.0 },
  lanczos: { fn: lanczosFilter, support: 3.0 },
});

/** Pillow's integer codes (PIL.Image.Resampling) -> names, so metadata may give either. */
const CODES = { 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming' };

function filterName(filter) {
  const name = typeof filter === 'number' ? CODES[filter] : String(filter).toLowerCase();
  if (!(name in FILTERS)) {
    throw new Error(`unknown resampling filter ${JSON.stringify(filter)}; use one of ${Object.keys(FILTERS).join(', ')}`);
  }
  return name;
}

function channelsOf(img) {
  const nc = CHANNELS[img.mode];
  if (nc === undefined) throw new Error(`unsupported image mode ${JSON.stringify(img.mode)} (L, RGB, RGBX or RGBA)`);
  if (img.data.length !== img.width * img.height * nc) {
    throw new Error(`image data has ${img.data.length} bytes, not ${img.width}x${img.height}x${nc}`);
  }
  return nc;
}

/** A new image of the same mode. */
function blank(mode, width, height) {
  return { data: new Uint8Array(width * height * CHANNELS[mode]), width, height, mode };
}

// --------------------------------------------------------------------------------- Resample.c

/** precompute_coeffs: per output pixel the first input index, the count, and int32 weights. */
function precomputeCoeffs(inSize, in0, in1, outSize, filter) {
  const scale = f32(in1 - in0) / outSize; // (double)(float in1 - float in0) / outSize
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const invFilterscale = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    let ww = 0.0;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * invFilterscale);
      k[x] = w;
      ww += w;
    }
    if (ww !== 0.0) {
      for (let x = 0; x < xmax; x++) k[x] /= ww;
    }
    // normalize_coeffs_8bpc
    for (let x = 0; x < xmax; x++) {
      kk[xx * ksize + x] = k[x] < 0 ? Math.trunc(-0.5 + k[x] * ONE) : Math.trunc(0.5 + k[x] * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(ss) {
  const v = ss >> PRECISION_BITS; // ss is an int32 (C's int accumulator, wrapping like it)
  return v <= 0 ? 0 : v >= 255 ? 255 : v;
}

// In the passes below every partial sum goes through `| 0` or an Int32Array: int32 arithmetic that
// wraps modulo 2^32 as C's int does (each product is below 2^31, so nothing is rounded first).

function resampleHorizontal(img, outWidth, outHeight, offset, { ksize, bounds, kk }) {
  const nc = CHANNELS[img.mode];
  const out = blank(img.mode, outWidth, outHeight);
  const src = img.data;
  const dst = out.data;
  const inStride = img.width * nc;
  let o = 0;
  for (let yy = 0; yy < outHeight; yy++) {
    const row = (yy + offset) * inStride;
    for (let xx = 0; xx < outWidth; xx++) {
      const xmax = bounds[xx * 2 + 1];
      const k0 = xx * ksize;
      let p = row + bounds[xx * 2] * nc;
      if (nc === 3) {
        let s0 = HALF, s1 = HALF, s2 = HALF;
        for (let x = 0; x < xmax; x++, p += 3) {
          const w = kk[k0 + x];
          s0 = (s0 + src[p] * w) | 0;
          s1 = (s1 + src[p + 1] * w) | 0;
          s2 = (s2 + src[p + 2] * w) | 0;
        }
        dst[o++] = clip8(s0); dst[o++] = clip8(s1); dst[o++] = clip8(s2);
      } else if (nc === 4) {
        let s0 = HALF, s1 = HALF, s2 = HALF, s3 = HALF;
        for (let x = 0; x < xmax; x++, p += 4) {
          const w = kk[k0 + x];
          s0 = (s0 + src[p] * w) | 0;
          s1 = (s1 + src[p + 1] * w) | 0;
          s2 = (s2 + src[p + 2] * w) | 0;
          s3 = (s3 + src[p + 3] * w) | 0;
        }
        dst[o++] = clip8(s0); dst[o++] = clip8(s1); dst[o++] = clip8(s2); dst[o++] = clip8(s3);
      } else {
        let s0 = HALF;
        for (let x = 0; x < xmax; x++, p++) s0 = (s0 + src[p] * kk[k0 + x]) | 0;
        dst[o++] = clip8(s0);
      }
    }
  }
  return out;
}

function resampleVertical(img, outHeight, { ksize, bounds, kk }) {
  const width = img.width;
  const out = blank(img.mode, width, outHeight);
  const src = img.data;
  const dst = out.data;
  const stride = width * CHANNELS[img.mode];
  const acc = new Int32Array(stride); // stores wrap to int32, as C's int accumulator
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = bounds[yy * 2];
    const ymax = bounds[yy * 2 + 1];
    const k0 = yy * ksize;
    acc.fill(HALF);
    for (let y = 0; y < ymax; y++) {
      const w = kk[k0 + y];
      const row = (y + ymin) * stride;
      for (let i = 0; i < stride; i++) acc[i] += src[row + i] * w;
    }
    const o = yy * stride;
    for (let i = 0; i < stride; i++) dst[o + i] = clip8(acc[i]);
  }
  return out;
}

/** ImagingResampleInner: the two separable passes, in Pillow's order. */
function resampleInner(img, xsize, ysize, filter, box) {
  const needHorizontal = xsize !== img.width || box[0] !== 0 || box[2] !== xsize;
  const needVertical = ysize !== img.height || box[1] !== 0 || box[3] !== ysize;
  // Pillow runs the vertical pass first when the height shrinks more than twice as much as
  // the width (fewer rows for the horizontal pass); each pass rounds to 8 bits.
  const horizontalFirst = !(img.height - ysize > 0 && img.height - ysize > (img.width - xsize) * 2);
  let vert = null;
  let horiz = null;
  let yFirst = 0;
  let yLast = 0;
  if ((needHorizontal && horizontalFirst) || needVertical) {
    vert = precomputeCoeffs(img.height, box[1], box[3], ysize, filter);
  }
  if (needHorizontal) {
    if (horizontalFirst) {
      yFirst = vert.bounds[0];
      yLast = vert.bounds[ysize * 2 - 2] + vert.bounds[ysize * 2 - 1];
      for (let i = 0; i < ysize; i++) vert.bounds[i * 2] -= yFirst;
    }
    horiz = precomputeCoeffs(img.width, box[0], box[2], xsize, filter);
  }
  let cur = img;
  let done = false;
  if (horizontalFirst) {
    if (needHorizontal) {
      cur = resampleHorizontal(cur, xsize, yLast - yFirst, yFirst, horiz);
      done = true;
    }
    if (needVertical) {
      cur = resampleVertical(cur, ysize, vert);
      done = true;
    }
  } else {
    if (needVertical) {
      cur = resampleVertical(cur, ysize, vert);
      done = true;
    }
    if (needHorizontal) {
      cur = resampleHorizontal(cur, xsize, ysize, 0, horiz);
      done = true;
    }
  }
  return done ? cur : copy(img);
}

// --------------------------------------------------------------------- Geometry.c (nearest)

/** ImagingScaleAffine with fill: the nearest-neighbour resize of `_resize`. */
function scaleNearest(img, xsize, ysize, box) {
  const nc = CHANNELS[img.mode];
  const out = blank(img.mode, xsize, ysize); // fill = 1: zeros outside the source
  const a0 = f32(box[2] - box[0]) / xsize;
  const a4 = f32(box[3] - box[1]) / ysize;
  const coord = (v) => (v < 0.0 ? -1 : Math.trunc(v));
  const xintab = new Int32Array(xsize);
  let xmin = xsize;
  let xmax = 0;
  let xo = box[0] + a0 * 0.5;
  for (let x = 0; x < xsize; x++) {
    const xin = coord(xo);
    if (xin >= 0 && xin < img.width) {
      xmax = x + 1;
      if (x < xmin) xmin = x;
      xintab[x] = xin;
    }
    xo += a0;
  }
  let yo = box[1] + a4 * 0.5;
  for (let y = 0; y < ysize; y++) {
    const yi = coord(yo);
    if (yi >= 0 && yi < img.height) {
      for (let x = xmin; x < xmax; x++) {
        const s = (yi * img.width + xintab[x]) * nc;
        const d = (y * xsize + x) * nc;
        for (let c = 0; c < nc; c++) out.data[d + c] = img.data[s + c];
      }
    }
    yo += a4;
  }
  return out;
}

// ------------------------------------------------------------------------------- helpers

/** A copy of the image (Image.copy). */
export function copy(img) {
  return { data: new Uint8Array(img.data), width: img.width, height: img.height, mode: img.mode };
}

/** Image.crop with integer (x0, y0, x1, y1) inside the image. */
export function crop(img, x0, y0, x1, y1) {
  const nc = channelsOf(img);
  if (!(x0 >= 0 && y0 >= 0 && x1 <= img.width && y1 <= img.height && x1 >= x0 && y1 >= y0)) {
    throw new Error(`crop box ${[x0, y0, x1, y1]} is not inside the ${img.width}x${img.height} image`);
  }
  const w = x1 - x0;
  const h = y1 - y0;
  const out = blank(img.mode, w, h);
  for (let y = 0; y < h; y++) {
    const s = ((y + y0) * img.width + x0) * nc;
    out.data.set(img.data.subarray(s, s + w * nc), y * w * nc);
  }
  return out;
}

/** RGBA -> RGBa (Convert.c rgbA2rgba: MULDIV255 of each colour by alpha). */
function premultiply(img) {
  const out = { data: new Uint8Array(img.data.length), width: img.width, height: img.height, mode: 'RGBa' };
  const s = img.data;
  const d = out.data;
  for (let i = 0; i < s.length; i += 4) {
    const a = s[i + 3];
    for (let c = 0; c < 3; c++) {
      const t = s[i + c] * a + 128;
      d[i + c] = ((t >> 8) + t) >> 8;
    }
    d[i + 3] = a;
  }
  return out;
}

/** RGBa -> RGBA (Convert.c rgba2rgbA: 255 * c / alpha, clipped, alpha 0 and 255 kept). */
function unpremultiply(img) {
  const out = { data: new Uint8Array(img.data.length), width: img.width, height: img.height, mode: 'RGBA' };
  const s = img.data;
  const d = out.data;
  for (let i = 0; i < s.length; i += 4) {
    const a = s[i + 3];
    for (let c = 0; c < 3; c++) {
      if (a === 255 || a === 0) d[i + c] = s[i + c];
      else {
        const v = Math.trunc((255 * s[i + c]) / a);
        d[i + c] = v <= 0 ? 0 : v < 256 ? v : 255;
      }
    }
    d[i + 3] = a;
  }
  return out;
}

// -------------------------------------------------------------------------------- Reduce.c

function reduceMultiplier(n) {
  // division_UINT32(n, 8): (UINT32)(float(2^32) / float(256 * n)), a float32 division
  return Math.trunc(f32(4294967296 / f32(256 * n))) >>> 0;
}

/**
 * Image.reduce(factor, box): each output pixel the rounded mean of a factor_x x factor_y block
 * of `box` (integers (x0, y0, x1, y1); the last row / column take the partial blocks).
 * Pillow's special cases (1x2, 2x2, 3x3, ...) all compute ((sum + n / 2) * multiplier) >> 24 in
 * uint32 (or the same value with a shift for powers of two), so one loop serves them all.
 */
export function reduce(img, factorX, factorY = factorX, box = null) {
  const nc = channelsOf(img);
  const [bx0, by0, bx1, by1] = box ?? [0, 0, img.width, img.height];
  if (!(Number.isInteger(factorX) && Number.isInteger(factorY) && factorX >= 1 && factorY >= 1)) {
    throw new Error(`reduce factors must be integers >= 1, not ${factorX}, ${factorY}`);
  }
  if (factorX === 1 && factorY === 1) return crop(img, bx0, by0, bx1, by1);
  if (img.mode === 'RGBA') return unpremultiply(reduce(premultiply(img), factorX, factorY, box));
  if (bx0 < 0 || by0 < 0) throw new Error("box offset can't be negative");
  if (bx1 > img.width || by1 > img.height) throw new Error("box can't exceed original image size");
  if (bx1 <= bx0 || by1 <= by0) throw new Error("box can't be empty");
  const outW = Math.trunc((bx1 - bx0 - 1) / factorX) + 1;
  const outH = Math.trunc((by1 - by0 - 1) / factorY) + 1;
  const out = blank(img.mode, outW, outH);
  const src = img.data;
  const dst = out.data;
  const stride = img.width * nc;
  const full = reduceMultiplier(factorX * factorY);
  let o = 0;
  for (let y = 0; y < outH; y++) {
    const ya = by0 + y * factorY;
    const yb = Math.min(ya + factorY, by1);
    for (let x = 0; x < outW; x++) {
      const xa = bx0 + x * factorX;
      const xb = Math.min(xa + factorX, bx1);
      const n = (xb - xa) * (yb - ya);
      const mult = n === factorX * factorY ? full : reduceMultiplier(n);
      const amend = n >> 1;
      let s0 = amend, s1 = amend, s2 = amend, s3 = amend;
      for (let yy = ya; yy < yb; yy++) {
        let p = yy * stride + xa * nc;
        const end = yy * stride + xb * nc;
        if (nc === 3) for (; p < end; p += 3) { s0 += src[p]; s1 += src[p + 1]; s2 += src[p + 2]; }
        else if (nc === 4) for (; p < end; p += 4) { s0 += src[p]; s1 += src[p + 1]; s2 += src[p + 2]; s3 += src[p + 3]; }
        else for (; p < end; p++) s0 += src[p];
      }
      // ((sum + n / 2) * multiplier) >> 24 in uint32
      dst[o++] = Math.imul(s0, mult) >>> 24;
      if (nc >= 3) { dst[o++] = Math.imul(s1, mult) >>> 24; dst[o++] = Math.imul(s2, mult) >>> 24; }
      if (nc === 4) dst[o++] = Math.imul(s3, mult) >>> 24;
    }
  }
  return out;
}

// -------------------------------------------------------------------------------- Image.py

/** Image._get_safe_box: the integer box a reduction must keep for the filter's support. */
function safeBox(img, width, height, filter, box) {
  const support = FILTERS[filter].support - 0.5;
  const supportX = support * ((box[2] - box[0]) / width);
  const supportY = support * ((box[3] - box[1]) / height);
  return [
    Math.max(0, Math.trunc(box[0] - supportX)),
    Math.max(0, Math.trunc(box[1] - supportY)),
    Math.min(img.width, Math.ceil(box[2] + supportX)),
    Math.min(img.height, Math.ceil(box[3] + supportY)),
  ];
}

/** The C `_resize` entry: float32 box, checks, the crop shortcut, nearest or resample. */
function resizeCore(img, width, height, filter, box) {
  const b = box.map(f32);
  if (width < 1 || height < 1) throw new Error('height and width must be > 0');
  if (b[0] < 0 || b[1] < 0) throw new Error("box offset can't be negative");
  if (b[2] > img.width || b[3] > img.height) throw new Error("box can't exceed original image size");
  if (b[2] - b[0] < 0 || b[3] - b[1] < 0) throw new Error("box can't be empty");
  if (b[0] === Math.trunc(b[0]) && f32(b[2] - b[0]) === width && b[1] === Math.trunc(b[1]) && f32(b[3] - b[1]) === height) {
    return crop(img, Math.trunc(b[0]), Math.trunc(b[1]), Math.trunc(b[2]), Math.trunc(b[3]));
  }
  if (filter === 'nearest') return scaleNearest(img, width, height, b);
  return resampleInner(img, width, height, FILTERS[filter], b);
}

/**
 * PIL.Image.Image.resize(size, resample, box, reducing_gap) for 8-bit images.
 *
 * @param {{data: Uint8Array, width: number, height: number, mode: string}} img
 * @param {number} width  output width
 * @param {number} height output height
 * @param {{filter?: string|number, box?: number[]|null, reducingGap?: number|null}} [options]
 *   filter: 'nearest', 'box', 'bilinear', 'hamming', 'bicubic' (default, as Pillow) or 'lanczos'
 *   (or Pillow's integer code); box: the source region (x0, y0, x1, y1), floats allowed;
 *   reducingGap: first reduce by an integer factor while the rest of the resize stays at least
 *   that many times (Pillow's reducing_gap; null = no reduction).
 * @returns {{data: Uint8Array, width: number, height: number, mode: string}}
 */
export function resize(img, width, height, { filter = 'bicubic', box = null, reducingGap = null } = {}) {
  channelsOf(img);
  filter = filterName(filter);
  if (reducingGap !== null && reducingGap !== undefined && reducingGap < 1.0) {
    throw new Error('reducing_gap must be 1.0 or greater');
  }
  box = box ? Array.from(box, Number) : [0, 0, img.width, img.height];
  if (img.width === width && img.height === height && box[0] === 0 && box[1] === 0 && box[2] === img.width && box[3] === img.height) {
    return copy(img);
  }
  if (img.mode === 'RGBA' && filter !== 'nearest') {
    return unpremultiply(resize(premultiply(img), width, height, { filter, box, reducingGap }));
  }
  if (reducingGap !== null && reducingGap !== undefined && filter !== 'nearest') {
    const factorX = Math.trunc((box[2] - box[0]) / width / reducingGap) || 1;
    const factorY = Math.trunc((box[3] - box[1]) / height / reducingGap) || 1;
    if (factorX > 1 || factorY > 1) {
      const rb = safeBox(img, width, height, filter, box);
      img = reduce(img, factorX, factorY, rb);
      box = [(box[0] - rb[0]) / factorX, (box[1] - rb[1]) / factorY, (box[2] - rb[0]) / factorX, (box[3] - rb[1]) / factorY];
    }
  }
  return resizeCore(img, width, height, filter, box);
}
