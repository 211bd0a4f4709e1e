// One photo through the page: decode (EXIF orientation applied), find the face, cut the crop the
// model reads, refuse what should not be graded, grade. The same steps as Python's
// skinage.runtime.photo.prepare + predict_image (the finder for face / forehead models, the
// model's Preprocess, the too_dark rule, the class rule), on the photo's own pixels.

import { rgbaToRgb } from './boxes.mjs';
import { readOrientation } from './exif.mjs';
import { reductionFactor, unreadable } from './find/finder.mjs';
import { OK, UNREADABLE } from './find/constants.mjs';
import { reduce } from './resample.mjs';
import { meanLuma } from './classify.mjs';

export const TOO_DARK = 'too_dark';

/**
 * The photo in `blob` decoded upright: {width, height, orientation, jpeg, bitmap, rgba, reader}, where
 * `reader(x, y, w, h)` gives RGBA bytes of a rectangle. Throws when the browser cannot decode it.
 * colorSpaceConversion 'none': Pillow does not apply ICC profiles, so neither may the page.
 */
export async function decodePhoto(blob) {
  const head = new Uint8Array(await blob.slice(0, 1 << 16).arrayBuffer());
  const orientation = readOrientation(head);
  const jpeg = head.length > 2 && head[0] === 0xff && head[1] === 0xd8;
  const bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const reader = (x, y, w, h) => {
    if (x === 0 && y === 0 && w === width && h === height) return rgba;
    const out = new Uint8ClampedArray(w * h * 4);
    for (let r = 0; r < h; r++) out.set(rgba.subarray(((y + r) * width + x) * 4, ((y + r) * width + x + w) * 4), r * w * 4);
    return out;
  };
  return { width, height, orientation, jpeg, bitmap, rgba, reader };
}

/**
 * The finder's working image: the photo as RGB (transparent pixels on white, as Python's to_rgb),
 * reduced by the largest factor of 2, 4, 8 keeping both sides >= DECODE_SIZE (Pillow's reduce; Python
 * decodes a JPEG that large at reduced scale instead, so there the two differ slightly).
 */
export function workingImage(photo) {
  const full = { data: rgbaToRgb(photo.rgba, photo.width, photo.height), width: photo.width, height: photo.height, mode: 'RGB' };
  const factor = reductionFactor(photo.width, photo.height);
  return { work: factor > 1 ? reduce(full, factor) : full, factor };
}

/**
 * Everything the page shows for one photo: {status, reason, found, crop, luma, class, index, probs,
 * ms, times, photo}. `status` is 'ok' or a refusal: no_face, several_faces, face_too_small,
 * unreadable (from the finder), too_dark (the crop's mean luma below `minLuma`).
 */
export async function processPhoto(blob, { finder, classifier, minLuma }) {
  const t0 = performance.now();
  const times = {};
  const lap = (name, since) => { times[name] = performance.now() - since; return performance.now(); };
  let photo;
  try {
    photo = await decodePhoto(blob);
  } catch (e) {
    const found = unreadable(String(e?.message || e || 'not an image'));
    return { status: UNREADABLE, reason: found.reason, found, ms: performance.now() - t0, times };
  }
  let t = lap('decode', t0);
  const { work, factor } = workingImage(photo);
  const found = await finder.find(work, factor, [photo.width, photo.height]);
  t = lap('find', t);
  const base = { photo, found, factor };
  // a face / forehead model reads the found box, so it refuses what the finder refuses; a model of the
  // whole photo (region bbox / none) is graded on the whole photo whatever the finder says, as in Python
  if (classifier.finds && found.status !== OK) return { ...base, status: found.status, reason: found.reason, ms: performance.now() - t0, times };
  const box = classifier.finds ? found.faces[0].region(classifier.pre.region) : null;
  const crop = classifier.crop(photo.reader, photo.width, photo.height, box, photo.orientation, photo.jpeg);
  const luma = meanLuma(crop.data);
  t = lap('crop', t);
  if (luma < minLuma) {
    const reason = `the photo is too dark: the part the model reads has a mean brightness of ${luma.toFixed(0)} of 255, `
      + `below ${minLuma}; take the photo in more light, with the face uncovered`;
    return { ...base, crop, luma, status: TOO_DARK, reason, ms: performance.now() - t0, times };
  }
  const graded = await classifier.classify(crop.data);
  lap('grade', t);
  return { ...base, crop, luma, status: OK, reason: found.reason, ...graded, class: graded.name, ms: performance.now() - t0, times };
}
