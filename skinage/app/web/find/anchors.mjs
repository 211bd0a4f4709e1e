// The 896 SSD anchors of BlazeFace short-range: a port of skinage/find/anchors.py. Centres (x, y)
// in 0..1 of the detector input, row by row, cell by cell, the repeats innermost.

import { ANCHOR_OFFSET, ANCHOR_STRIDES, DETECTOR_SIZE } from './constants.mjs';

/** Anchor centres as a Float64Array of (x, y) pairs. */
export function ssdAnchors(size = DETECTOR_SIZE, strides = ANCHOR_STRIDES, offset = ANCHOR_OFFSET) {
  const out = [];
  let i = 0;
  while (i < strides.length) {
    let j = i;
    while (j < strides.length && strides[j] === strides[i]) j += 1;
    const repeats = 2 * (j - i);
    const cells = Math.floor(size / strides[i]);
    for (let y = 0; y < cells; y++) {
      for (let x = 0; x < cells; x++) {
        const cx = (x + offset) / cells;
        const cy = (y + offset) / cells;
        for (let r = 0; r < repeats; r++) out.push(cx, cy);
      }
    }
    i = j;
  }
  return Float64Array.from(out);
}
