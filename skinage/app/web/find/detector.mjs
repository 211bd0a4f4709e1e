// BlazeFace short-range: letterboxed input, anchor decoding, weighted non-maximum suppression. A
// line-by-line port of skinage/find/detector.py; boxes are [x0, y0, x1, y1], keypoints a
// Float64Array of 6 (x, y) pairs. Sums follow NumPy's order (npSum: its pairwise summation) so
// that the merged boxes are the same numbers as in Python.

import { ssdAnchors } from './anchors.mjs';
import { DETECTOR_SIZE, LOGIT_CLIP, MIN_DETECTION_SCORE, NMS_IOU, NUM_REGRESSORS } from './constants.mjs';
import { detectorTensor, letterbox } from './imaging.mjs';

/** NumPy's sum of a float64 vector (pairwise summation: blocks of 8 partial sums, halves above 128). */
export function npSum(a, start = 0, n = a.length - start) {
  if (n < 8) {
    let r = 0.0;
    for (let i = 0; i < n; i++) r += a[start + i];
    return r;
  }
  if (n <= 128) {
    const r = [];
    for (let j = 0; j < 8; j++) r.push(a[start + j]);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[start + i + j];
    let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[start + i];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return npSum(a, start, n2) + npSum(a, start + n2, n - n2);
}

/** One detected face in image pixels. */
export class Detection {
  constructor(box, keypoints, score) {
    this.box = box;
    this.keypoints = keypoints;
    this.score = score;
  }

  get area() {
    const [x0, y0, x1, y1] = this.box;
    return (x1 - x0) * (y1 - y0);
  }

  /** Distance between the two eye keypoints over the box's long side (small for a face in profile). */
  get eyeSpan() {
    const [x0, y0, x1, y1] = this.box;
    const dx = this.keypoints[2] - this.keypoints[0];
    const dy = this.keypoints[3] - this.keypoints[1];
    return Math.sqrt(dx * dx + dy * dy) / Math.max(x1 - x0, y1 - y0);
  }
}

/** Raw outputs -> {boxes (N x 4), kps (N x 12), scores (N)}, float64, in units of the detector input. */
export function decode(regressors, logits, anchors, size = DETECTOR_SIZE) {
  const n = logits.length;
  const boxes = new Float64Array(n * 4);
  const kps = new Float64Array(n * 12);
  const scores = new Float64Array(n);
  for (let a = 0; a < n; a++) {
    const r = a * NUM_REGRESSORS;
    const ax = anchors[a * 2];
    const ay = anchors[a * 2 + 1];
    const cx = regressors[r] / size + ax;
    const cy = regressors[r + 1] / size + ay;
    const w = regressors[r + 2] / size;
    const h = regressors[r + 3] / size;
    boxes.set([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], a * 4);
    for (let k = 0; k < 6; k++) {
      kps[a * 12 + k * 2] = regressors[r + 4 + k * 2] / size + ax;
      kps[a * 12 + k * 2 + 1] = regressors[r + 5 + k * 2] / size + ay;
    }
    const z = Math.min(Math.max(logits[a], -LOGIT_CLIP), LOGIT_CLIP);
    scores[a] = 1.0 / (1.0 + Math.exp(-z));
  }
  return { boxes, kps, scores };
}

/** IoU of box a (4 numbers) with box b; 0 where the union is empty. */
export function iou(a, b) {
  const ix = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const iy = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  const inter = ix > 0 && iy > 0 ? ix * iy : 0.0;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0.0;
}

/** MediaPipe's weighted NMS: [{box, kps, score}], best first (score descending, ties by anchor order). */
export function weightedNms({ boxes, kps, scores }, threshold = NMS_IOU, minScore = MIN_DETECTION_SCORE) {
  const boxOf = (i) => boxes.subarray(i * 4, i * 4 + 4);
  let order = [];
  for (let i = 0; i < scores.length; i++) {
    const b = boxOf(i);
    if (scores[i] >= minScore && b[2] > b[0] && b[3] > b[1]) order.push(i);
  }
  order.sort((i, j) => scores[j] - scores[i] || i - j);
  const out = [];
  while (order.length) {
    const best = boxOf(order[0]);
    const group = [];
    const rest = [];
    for (const i of order) (iou(best, boxOf(i)) > threshold ? group : rest).push(i);
    const w = Float64Array.from(group, (i) => scores[i]);
    const total = npSum(w);
    // NumPy sums the weighted rows in order (a reduction over axis 0), then divides by the total
    const box = new Float64Array(4);
    const kp = new Float64Array(12);
    group.forEach((i, g) => {
      for (let c = 0; c < 4; c++) box[c] = g === 0 ? boxes[i * 4 + c] * w[g] : box[c] + boxes[i * 4 + c] * w[g];
      for (let c = 0; c < 12; c++) kp[c] = g === 0 ? kps[i * 12 + c] * w[g] : kp[c] + kps[i * 12 + c] * w[g];
    });
    for (let c = 0; c < 4; c++) box[c] /= total;
    for (let c = 0; c < 12; c++) kp[c] /= total;
    out.push({ box, kps: kp, score: scores[order[0]] });
    order = rest;
  }
  return out;
}

/** A detection in detector units (0..1) -> image pixels (undoing the letterbox). */
export function toImage(box, kps, score, lb) {
  const n = lb.size;
  const [x0, y0] = lb.toImage(box[0] * n, box[1] * n);
  const [x1, y1] = lb.toImage(box[2] * n, box[3] * n);
  const k = new Float64Array(12);
  for (let i = 0; i < 6; i++) {
    const [x, y] = lb.toImage(kps[i * 2] * n, kps[i * 2 + 1] * n);
    k[i * 2] = x;
    k[i * 2 + 1] = y;
  }
  return new Detection([x0, y0, x1, y1], k, score);
}

/** BlazeFace short-range on an onnxruntime-web session; `detect(image)` takes an upright RGB image. */
export class Detector {
  constructor(ort, session) {
    this.ort = ort;
    this.session = session;
    this.inputName = session.inputNames[0];
    this.anchors = ssdAnchors();
  }

  /** Raw model outputs and the letterbox. */
  async run(image) {
    const { square, lb } = letterbox(image, DETECTOR_SIZE);
    const input = new this.ort.Tensor('float32', detectorTensor(square, DETECTOR_SIZE), [1, 3, DETECTOR_SIZE, DETECTOR_SIZE]);
    const out = await this.session.run({ [this.inputName]: input });
    // the two outputs: regressors (896 x 16 values) and classificators (896 logits)
    const [a, b] = this.session.outputNames.map((name) => out[name].data);
    const [regressors, logits] = a.length > b.length ? [a, b] : [b, a];
    return { regressors, logits, lb };
  }

  /** Faces in `image`, in its pixels, highest score first. */
  async detect(image) {
    const { regressors, logits, lb } = await this.run(image);
    const decoded = decode(regressors, logits, this.anchors);
    return weightedNms(decoded).map(({ box, kps, score }) => toImage(box, kps, score, lb));
  }
}
