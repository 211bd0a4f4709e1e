// The face box and the forehead box, in image pixels [x0, y0, x1, y1], clamped to the image: a
// port of skinage/find/regions.py (read its docstring for the rules). Landmarks are a flat
// Float64Array of 468 (x, y, z).

import { BROW_UPPER, EYE_CORNERS, FOREHEAD_SIDES, MESH_TOP } from './constants.mjs';
import { npSum } from './detector.mjs';

/** `box` cut to the image of `size` = [W, H]. */
export function clampBox(box, size) {
  const [W, H] = size;
  const [x0, y0, x1, y1] = box;
  const c = (v, hi) => Math.min(Math.max(v, 0.0), hi);
  return [c(x0, W), c(y0, H), c(x1, W), c(y1, H)];
}

/** The square of side max(w, h) with the centre of `box`, clamped to the image. */
export function squareBox(box, size) {
  const [x0, y0, x1, y1] = box;
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const half = Math.max(x1 - x0, y1 - y0) / 2;
  return clampBox([cx - half, cy - half, cx + half, cy + half], size);
}

/** [origin x, origin y, cos, sin]: the midpoint of the outer eye corners and the unit vector 33 -> 263. */
export function eyeAxis(lm) {
  const [a, b] = EYE_CORNERS;
  const dx = lm[b * 3] - lm[a * 3];
  const dy = lm[b * 3 + 1] - lm[a * 3 + 1];
  const norm = Math.sqrt(dx * dx + dy * dy);
  const [cos, sin] = norm > 0 ? [dx / norm, dy / norm] : [1.0, 0.0];
  return [(lm[a * 3] + lm[b * 3]) / 2, (lm[a * 3 + 1] + lm[b * 3 + 1]) / 2, cos, sin];
}

/** The head's roll in degrees (eye line 33 -> 263 against the x axis, clockwise positive); informational. */
export function rollDegrees(lm) {
  const [, , cos, sin] = eyeAxis(lm);
  return (Math.atan2(sin, cos) * 180) / Math.PI;
}

/** The upright forehead box from the landmarks (image pixels), clamped to the image of `size`. */
export function foreheadBox(lm, size) {
  const [ox, oy, cos, sin] = eyeAxis(lm);
  // into the aligned frame: turn by minus the roll
  const aligned = (i) => {
    const px = lm[i * 3] - ox;
    const py = lm[i * 3 + 1] - oy;
    return [px * cos + py * sin, py * cos - px * sin];
  };
  const bottom = Math.min(...BROW_UPPER.map((i) => aligned(i)[1]));
  const top = npSum(Float64Array.from(MESH_TOP, (i) => aligned(i)[1])) / MESH_TOP.length;
  const left = aligned(FOREHEAD_SIDES[0])[0];
  const right = aligned(FOREHEAD_SIDES[1])[0];
  const lo = Math.min(left, right);
  const hi = Math.max(left, right);
  const vlo = Math.min(top, bottom);
  const vhi = Math.max(top, bottom);
  const us = [lo, hi, hi, lo];
  const vs = [vlo, vlo, vhi, vhi];
  // back into the image: turn by the roll
  const xs = us.map((u, k) => ox + u * cos - vs[k] * sin);
  const ys = us.map((u, k) => oy + u * sin + vs[k] * cos);
  return clampBox([Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)], size);
}
