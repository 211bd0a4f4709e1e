// The classifier on the page: the model's own Preprocess and class rule, read from the ONNX file's
// metadata, and the too_dark rule. The same answer as Python's `skinage predict` (skinage/runtime):
// the crop is load_crop's (boxes.mjs cropResize, bit-exact on the same decoded pixels), the class
// rule is skinage/models/decode.py's predict_labels, too_dark is skinage/runtime/quality.py's.

import { cropResize } from './boxes.mjs';
import { npSum } from './find/detector.mjs';
import { skinageMetadata } from './onnxmeta.mjs';

/** Rec.601 luma weights of R, G, B (skinage/runtime/quality.py LUMA_WEIGHTS). */
export const LUMA_WEIGHTS = Object.freeze([0.299, 0.587, 0.114]);

/**
 * predict_labels for one row: the argmax (the first of equal maxima, as NumPy), or for an ordinal
 * head ('coral' / 'corn') the rank: the number of k with P(y > k) = 1 - (p_0 + ... + p_k) > 0.5.
 */
export function classIndex(probs, ordinal) {
  const p = Array.from(probs, Number); // float64, as Python reads them
  if (!ordinal) {
    let best = 0;
    for (let k = 1; k < p.length; k++) if (p[k] > p[best]) best = k;
    return best;
  }
  let cum = 0.0;
  let rank = 0;
  for (let k = 0; k < p.length - 1; k++) {
    cum += p[k];
    if (1.0 - cum > 0.5) rank += 1;
  }
  return rank;
}

/** Mean Rec.601 luma (0..255, float64) of RGB bytes: sum of 0.299 R + 0.587 G + 0.114 B over pixels / n. */
export function meanLuma(rgb) {
  const n = rgb.length / 3;
  const y = new Float64Array(n);
  const [wr, wg, wb] = LUMA_WEIGHTS;
  for (let i = 0; i < n; i++) y[i] = rgb[i * 3] * wr + rgb[i * 3 + 1] * wg + rgb[i * 3 + 2] * wb;
  return npSum(y) / n;
}

/** The model the page runs: its session, classes, Preprocess and class rule (from its metadata). */
export class Classifier {
  /** `bytes`: the ONNX file; `ort`: onnxruntime-web; `options`: session options. */
  static async load(ort, bytes, options) {
    const meta = skinageMetadata(bytes);
    const session = await ort.InferenceSession.create(bytes, options);
    return new Classifier(ort, session, meta);
  }

  constructor(ort, session, meta) {
    this.ort = ort;
    this.session = session;
    this.meta = meta;
    this.classes = meta.classes;
    this.ordinal = meta.ordinal || null;
    this.pre = meta.preprocessing;
    this.classRule = meta.output?.class_rule ?? (this.ordinal ? 'rank' : 'argmax');
    this.inputName = meta.input?.name ?? session.inputNames[0];
    this.outputName = meta.output?.name ?? session.outputNames[0];
  }

  /** Whether the crop's box comes from the finder (regions 'face' / 'forehead'). */
  get finds() {
    return this.pre.region === 'face' || this.pre.region === 'forehead';
  }

  /**
   * The crop the model reads (load_crop's pixels): `reader` (x, y, w, h) => RGBA bytes of the upright
   * photo of `width` x `height`, `box` in its pixels (null: the whole photo), `orientation` its EXIF
   * orientation, `jpeg` whether it is a JPEG (Python decodes big JPEG crops at reduced scale: approximated).
   */
  crop(reader, width, height, box, orientation, jpeg) {
    const { size, margin, square, interpolation } = this.pre;
    const region = this.pre.region === 'none' ? null : box;
    return cropResize(reader, width, height, region, { size, margin, square, interpolation, orientation, jpegDraft: jpeg });
  }

  /** Class probabilities (float32, one per class) of one size x size x 3 RGB crop. */
  async probs(rgb) {
    const s = this.pre.size;
    const input = new this.ort.Tensor('uint8', rgb, [1, s, s, 3]);
    const out = await this.session.run({ [this.inputName]: input });
    return Array.from(out[this.outputName].data);
  }

  /** {index, name, probs} of one crop, by the model's class rule. */
  async classify(rgb) {
    const probs = await this.probs(rgb);
    const index = classIndex(probs, this.ordinal);
    return { index, name: this.classes[index], probs };
  }
}
