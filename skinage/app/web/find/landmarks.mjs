// FaceMesh: a rotated square crop around a detection, 468 landmarks mapped back to the image. A
// port of skinage/find/landmarks.py; the crop's rotation is the eye line's unit vector d / |d|
// (no trigonometry), so the numbers are Python's.

import { LANDMARK_SIZE, NUM_LANDMARKS, ROI_SCALE } from './constants.mjs';
import { squareToImage, warpSquareTensor } from './imaging.mjs';

/** A turned square: centre (cx, cy), side, and the unit vector (cos, sin) of its x axis. */
export class Roi {
  constructor(cx, cy, side, cos, sin) {
    Object.assign(this, { cx, cy, side, cos, sin });
    Object.freeze(this);
  }

  /** The FaceMesh crop of a detection: box centre, scale x long side, eye-line rotation. */
  static fromDetection(box, keypoints, scale = ROI_SCALE) {
    const [x0, y0, x1, y1] = box;
    const dx = keypoints[2] - keypoints[0];
    const dy = keypoints[3] - keypoints[1];
    const norm = Math.sqrt(dx * dx + dy * dy);
    const [cos, sin] = norm > 0 ? [dx / norm, dy / norm] : [1.0, 0.0];
    return new Roi((x0 + x1) / 2, (y0 + y1) / 2, Math.max(x1 - x0, y1 - y0) * scale, cos, sin);
  }

  /** FaceMesh's float32 input (1, 3, n, n) for this square of `image` (RGB). */
  tensor(image, n = LANDMARK_SIZE) {
    return warpSquareTensor(image, this.cx, this.cy, this.side, this.cos, this.sin, n);
  }

  /** Crop coordinates (0..n, flat x, y, z) -> image pixels. */
  toImage(points, n = LANDMARK_SIZE) {
    return squareToImage(points, this.cx, this.cy, this.side, this.cos, this.sin, n);
  }
}

/** FaceMesh on an onnxruntime-web session. */
export class Landmarker {
  constructor(ort, session) {
    this.ort = ort;
    this.session = session;
    this.inputName = session.inputNames[0];
  }

  /** float32 input -> {points (468 x 3 flat, crop pixels, float64), logit}. */
  async run(tensor, n = LANDMARK_SIZE) {
    const out = await this.session.run({ [this.inputName]: new this.ort.Tensor('float32', tensor, [1, 3, n, n]) });
    // the landmark tensor has 1404 values, the presence logit 1
    const outs = this.session.outputNames.map((name) => out[name].data);
    const points = outs.reduce((a, b) => (b.length > a.length ? b : a));
    const logit = outs.reduce((a, b) => (b.length < a.length ? b : a))[0];
    if (points.length !== NUM_LANDMARKS * 3) throw new Error(`FaceMesh gave ${points.length} values, expected ${NUM_LANDMARKS * 3}`);
    return { points: Float64Array.from(points), logit };
  }

  /** {points (468 x 3 flat, image pixels), presence probability} for the face in `roi`. */
  async landmarks(image, roi) {
    const { points, logit } = await this.run(roi.tensor(image));
    const presence = 1.0 / (1.0 + Math.exp(-Math.min(Math.max(logit, -100.0), 100.0)));
    return { points: roi.toImage(points), presence };
  }
}
