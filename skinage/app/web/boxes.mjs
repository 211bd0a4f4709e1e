// The crop-and-resize of skinage.data.images.load_crop, in JavaScript, bit-exact with Python on
// the same decoded pixels: `expand_box` (margin, square, clamped / shifted into the image), the
// sub-image cut 2 px around the box, Pillow's resize of it with `box=` and reducing_gap=3.0
// (resample.mjs), the EXIF transpose, and to_rgb's compositing of transparent pixels on white.
//
// What it cannot reproduce exactly: Python's fast path for big JPEGs. When the crop is at least
// twice the output size on both sides, load_crop decodes the JPEG at 1/2, 1/4 or 1/8 scale
// (libjpeg's scaled IDCT, `draft`), which cannot be recomputed from the browser's full-size
// pixels. Without `jpegDraft` the page crops the full-size pixels (bit-exact with load_crop on a
// full decode); with `jpegDraft: true` it stands in for the scaled decode with Pillow's box
// reduction of the full-size pixels at the same scale, then follows load_crop's reduced-scale
// arithmetic exactly: measured on 600x600 photos, mean |diff| from Python 0.15 grey levels
// instead of 0.36 (max 8 instead of 19); tests/test_app_pixels_browser.py measures it.
//
// EXIF orientation: Python resizes in the *stored* orientation and transposes the result; the
// browser (createImageBitmap with imageOrientation 'from-image') hands over upright pixels.
// Resizing the upright pixels instead rounds differently (the two passes swap for a quarter turn,
// a mirrored box rounds its edges the other way), so `cropResize` takes the orientation (read
// with exif.mjs) and turns the part it needs back to the stored frame first. With it the result
// is the same as Python's; without it, a rotated photo differs by a grey level here and there.

import { crop, reduce, resize } from './resample.mjs';

/** An error with a short `reason`, like skinage.data.images.ImageError. */
export class ImageError extends Error {
  constructor(reason, detail = '') {
    super(detail ? `${reason}: ${detail}` : reason);
    this.name = 'ImageError';
    this.reason = reason;
    this.detail = detail;
  }
}

const isMissing = (v) => v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v));

/**
 * expand_box(bbox, [width, height], margin, square) of skinage.data.images: the crop box for
 * `bbox` = [x0, y0, x1, y1] (null or NaNs: the whole image). `margin` adds that fraction of the
 * box's width / height on every side; `square` grows the shorter side around the centre to the
 * longer one, shifted inside the image when it fits; the result is clamped to the image.
 * Throws ImageError('bbox inverted' | 'bbox zero-area' | 'bbox outside image').
 */
export function expandBox(bbox, imageSize, margin = 0.0, square = false) {
  const W = Number(imageSize[0]);
  const H = Number(imageSize[1]);
  let x0, y0, x1, y1;
  if (bbox === null || bbox === undefined || bbox.some(isMissing)) {
    [x0, y0, x1, y1] = [0.0, 0.0, W, H];
    if (!square && !margin) return [x0, y0, x1, y1];
  } else {
    [x0, y0, x1, y1] = bbox.map(Number);
    const shown = `(${x0}, ${y0}, ${x1}, ${y1})`;
    if (x1 < x0 || y1 < y0) throw new ImageError('bbox inverted', `${shown} has x1 < x0 or y1 < y0`);
    if (x1 === x0 || y1 === y0) throw new ImageError('bbox zero-area', shown);
    if (x1 <= 0 || y1 <= 0 || x0 >= W || y0 >= H) throw new ImageError('bbox outside image', `${shown} vs image ${W}x${H}`);
  }
  const bw = x1 - x0;
  const bh = y1 - y0;
  if (margin) {
    [x0, x1] = [x0 - margin * bw, x1 + margin * bw];
    [y0, y1] = [y0 - margin * bh, y1 + margin * bh];
  }
  if (square) {
    const cx = (x0 + x1) / 2;
    const cy = (y0 + y1) / 2;
    const side = Math.min(Math.max(x1 - x0, y1 - y0), W, H);
    [x0, x1] = [cx - side / 2, cx + side / 2];
    [y0, y1] = [cy - side / 2, cy + side / 2];
    if (x0 < 0) [x0, x1] = [0.0, x1 - x0];
    if (x1 > W) [x0, x1] = [x0 - (x1 - W), W];
    if (y0 < 0) [y0, y1] = [0.0, y1 - y0];
    if (y1 > H) [y0, y1] = [y0 - (y1 - H), H];
  }
  x0 = Math.max(0.0, x0);
  y0 = Math.max(0.0, y0);
  x1 = Math.min(W, x1);
  y1 = Math.min(H, y1);
  if (x1 - x0 <= 0 || y1 - y0 <= 0) {
    throw new ImageError('bbox outside image', `nothing of the box lies inside the ${W}x${H} image`);
  }
  return [x0, y0, x1, y1];
}

/** _box_to_raw: a box in upright coordinates -> the stored image (raw size W x H). */
export function boxToRaw(box, orientation, W, H) {
  const [x0, y0, x1, y1] = box;
  switch (orientation) {
    case 2: return [W - x1, y0, W - x0, y1];
    case 3: return [W - x1, H - y1, W - x0, H - y0];
    case 4: return [x0, H - y1, x1, H - y0];
    case 5: return [y0, x0, y1, x1];
    case 6: return [y0, H - x1, y1, H - x0];
    case 7: return [W - y1, H - x1, W - y0, H - x0];
    case 8: return [W - y1, x0, W - y0, x1];
    default: return [x0, y0, x1, y1];
  }
}

/** The inverse of boxToRaw: a box of the stored image (W x H) -> upright coordinates. */
export function rawToBox(r, orientation, W, H) {
  const [r0, r1, r2, r3] = r;
  switch (orientation) {
    case 2: return [W - r2, r1, W - r0, r3];
    case 3: return [W - r2, H - r3, W - r0, H - r1];
    case 4: return [r0, H - r3, r2, H - r1];
    case 5: return [r1, r0, r3, r2];
    case 6: return [H - r3, r0, H - r1, r2];
    case 7: return [H - r3, W - r2, H - r1, W - r0];
    case 8: return [r1, W - r2, r3, W - r0];
    default: return [r0, r1, r2, r3];
  }
}

/**
 * Image.transpose for the EXIF orientations: `transpose(img, o)` is what exif_transpose does to a
 * stored image of orientation o (2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE,
 * 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90); `transpose(img, o, true)` undoes it.
 */
export function transpose(img, orientation, inverse = false) {
  if (!(orientation >= 2 && orientation <= 8)) return img;
  const nc = img.data.length / (img.width * img.height);
  // the inverse of ROTATE_270 is ROTATE_90 and back; the other five undo themselves
  const o = inverse && (orientation === 6 || orientation === 8) ? 14 - orientation : orientation;
  const w = img.width;
  const h = img.height;
  const [ow, oh] = o >= 5 ? [h, w] : [w, h];
  const { start, dx, dy } = walk(o, w, h, w, nc);
  const src = img.data;
  const out = new Uint8Array(src.length);
  let d = 0;
  for (let y = 0; y < oh; y++) {
    let s = start + y * dy;
    for (let x = 0; x < ow; x++, s += dx) {
      for (let c = 0; c < nc; c++) out[d++] = src[s + c];
    }
  }
  return { data: out, width: ow, height: oh, mode: img.mode };
}

/**
 * How transpose `o` reads a w x h source stored with `stride` pixels a row: output pixel (x, y)
 * is source byte start + x dx + y dy, since (sx, sy) = (ax + bx x + cx y, ay + by x + cy y).
 */
function walk(o, w, h, stride, nc) {
  const [ax, bx, cx, ay, by, cy] = {
    1: [0, 1, 0, 0, 0, 1],
    2: [w - 1, -1, 0, 0, 0, 1],
    3: [w - 1, -1, 0, h - 1, 0, -1],
    4: [0, 1, 0, h - 1, 0, -1],
    5: [0, 0, 1, 0, 1, 0],
    6: [0, 0, 1, h - 1, -1, 0],
    7: [w - 1, 0, -1, h - 1, -1, 0],
    8: [w - 1, 0, -1, 0, 1, 0],
  }[o];
  return { start: (ay * stride + ax) * nc, dx: (by * stride + bx) * nc, dy: (cy * stride + cx) * nc };
}

/**
 * One pass for crop + to_rgb + the inverse EXIF transpose: the w x h rectangle at (x0, y0) of an
 * upright RGBA image (`stride` pixels a row) as RGB pixels in the stored orientation.
 */
function storedPart(rgba, stride, x0, y0, w, h, orientation) {
  const inv = orientation === 6 || orientation === 8 ? 14 - orientation : orientation;
  const [ow, oh] = inv >= 5 ? [h, w] : [w, h];
  const { start, dx, dy } = walk(inv, w, h, stride, 4);
  const base = (y0 * stride + x0) * 4 + start;
  const out = new Uint8Array(ow * oh * 3);
  let d = 0;
  let translucent = false;
  for (let y = 0; y < oh; y++) {
    let s = base + y * dy;
    for (let x = 0; x < ow; x++, s += dx, d += 3) {
      out[d] = rgba[s];
      out[d + 1] = rgba[s + 1];
      out[d + 2] = rgba[s + 2];
      if (rgba[s + 3] !== 255) translucent = true;
    }
  }
  if (translucent) { // rare (photos are opaque): lay the part on white exactly as to_rgb does
    const cut = crop({ data: rgba, width: stride, height: rgba.length / 4 / stride, mode: 'RGBA' }, x0, y0, x0 + w, y0 + h);
    return transpose({ data: rgbaToRgb(cut.data, w, h), width: w, height: h, mode: 'RGB' }, orientation, true);
  }
  return { data: out, width: ow, height: oh, mode: 'RGB' };
}

/**
 * RGBA (straight alpha) -> RGB laid on white, as to_rgb does with Image.alpha_composite
 * (AlphaComposite.c with 7 extra bits, then convert('RGB')); opaque pixels are unchanged.
 */
export function rgbaToRgb(data, width, height) {
  const n = width * height;
  const out = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n * 4; i += 4, j += 3) {
    const a = data[i + 3];
    if (a === 255) {
      out[j] = data[i];
      out[j + 1] = data[i + 1];
      out[j + 2] = data[i + 2];
    } else if (a === 0) {
      out[j] = out[j + 1] = out[j + 2] = 255;
    } else {
      // dst = opaque white: blend = 255 (255 - a), outa255 = 255 * 255; 7 extra bits
      const coef1 = Math.trunc((a * 255 * 255 * 128) / (a * 255 + 255 * (255 - a)));
      const coef2 = 255 * 128 - coef1;
      for (let c = 0; c < 3; c++) {
        const t = data[i + c] * coef1 + 255 * coef2 + (0x80 << 7);
        out[j + c] = (((t >> 8) + t) >> 8) >> 7;
      }
    }
  }
  return out;
}

/** load_crop's _pick_scale: the largest JPEG scale (8, 4, 2) keeping the crop >= size, else 1. */
export function pickScale(cropW, cropH, size) {
  for (const s of [8, 4, 2]) if (cropW / s >= size && cropH / s >= size) return s;
  return 1;
}

/**
 * The pixels `load_crop(path, bbox, size, margin, square, resample)` gives for a decoded image.
 *
 * @param {Uint8Array|Uint8ClampedArray|function} rgba  the *upright* image, 4 bytes a pixel
 *   (canvas getImageData of createImageBitmap(file, {imageOrientation: 'from-image'})), or a
 *   function (x, y, w, h) => the RGBA bytes of that rectangle, e.g.
 *   `(x, y, w, h) => ctx.getImageData(x, y, w, h).data`, so that only the part the crop needs is
 *   read out of a 12 MP photo
 * @param {number} width   upright width
 * @param {number} height  upright height
 * @param {number[]|null} bbox  [x0, y0, x1, y1] in upright pixels, null for the whole image
 * @param {{size?: number, margin?: number, square?: boolean, interpolation?: string,
 *          orientation?: number, jpegDraft?: boolean}} [options]  the model's Preprocess;
 *   `orientation` the file's EXIF orientation (exif.mjs readOrientation), so the resize runs in
 *   the stored frame as in Python; `jpegDraft` (for JPEG files) approximates load_crop's
 *   reduced-scale JPEG decoding of big crops (see the top of this file)
 * @returns {{data: Uint8Array, width: number, height: number, box: number[], draftScale: number}}
 *   size x size x 3 RGB bytes (numpy's (size, size, 3) order), the expanded box in upright
 *   pixels, and the scale Python decodes this crop at when the file is a JPEG (1: full size;
 *   above 1 the page can match Python only approximately, see `jpegDraft`)
 */
export function cropResize(rgba, width, height, bbox, { size = 224, margin = 0.0, square = false, interpolation = 'bilinear', orientation = 1, jpegDraft = false } = {}) {
  size = Math.trunc(size);
  if (!(size >= 1)) throw new Error(`size must be a positive integer, not ${size}`);
  const reader = typeof rgba === 'function';
  if (!reader && rgba.length !== width * height * 4) throw new Error(`expected ${width}x${height}x4 RGBA bytes, got ${rgba.length}`);
  const o = orientation >= 2 && orientation <= 8 ? orientation : 1;
  const [W, H] = o >= 5 ? [height, width] : [width, height]; // the stored image's size
  const box = expandBox(bbox, [width, height], margin, square);
  const rbox = boxToRaw(box, o, W, H);
  // Python's JPEG draft: a ds times smaller image of ceil(W / ds) x ceil(H / ds) pixels
  const draftScale = pickScale(rbox[2] - rbox[0], rbox[3] - rbox[1], size);
  const ds = jpegDraft ? draftScale : 1;
  const [dw, dh] = [Math.trunc((W + ds - 1) / ds), Math.trunc((H + ds - 1) / ds)];
  const scale = ds > 1 ? W / dw : 1;
  const sbox = rbox.map((v) => v / scale);
  // the part load_crop cuts (filter support), in stored coordinates of the (reduced) image
  const ix0 = Math.max(0, Math.floor(sbox[0]) - 2);
  const iy0 = Math.max(0, Math.floor(sbox[1]) - 2);
  const ix1 = Math.min(dw, Math.ceil(sbox[2]) + 2);
  const iy1 = Math.min(dh, Math.ceil(sbox[3]) + 2);
  // the same pixels, cut from the upright image and turned back to the stored frame
  const raw = [ix0 * ds, iy0 * ds, Math.min(W, ix1 * ds), Math.min(H, iy1 * ds)];
  const [ux0, uy0, ux1, uy1] = rawToBox(raw, o, W, H);
  const [cw, ch] = [ux1 - ux0, uy1 - uy0];
  let part;
  if (reader) {
    const cut = rgba(ux0, uy0, cw, ch);
    if (cut.length !== cw * ch * 4) throw new Error(`the reader gave ${cut.length} bytes for a ${cw}x${ch} RGBA rectangle`);
    part = storedPart(cut, cw, 0, 0, cw, ch, o);
  } else {
    part = storedPart(rgba, width, ux0, uy0, cw, ch, o);
  }
  if (ds > 1) part = reduce(part, ds, ds); // blocks aligned on the stored image's origin, as the decoder's
  const rel = [sbox[0] - ix0, sbox[1] - iy0, Math.min(sbox[2], ix1) - ix0, Math.min(sbox[3], iy1) - iy0];
  const out = transpose(resize(part, size, size, { filter: interpolation, box: rel, reducingGap: 3.0 }), o);
  return { data: out.data, width: out.width, height: out.height, box, draftScale };
}
