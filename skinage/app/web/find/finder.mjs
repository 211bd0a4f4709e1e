// The face finder in the browser: BlazeFace, then FaceMesh on each detection, then the status. A
// port of skinage/find/finder.py (Finder.find_decoded, status_of, reduction_factor) on the same two
// ONNX files with onnxruntime-web. Boxes and landmarks are in pixels of the upright full-resolution
// photo; a large photo is searched reduced by a whole factor (reductionFactor) as in Python.

import {
  COMPARABLE_AREA, DECODE_SIZE, FACE_TOO_SMALL, FALLBACK_BORDER, FALLBACK_FILL, MIN_EYE_SPAN, MIN_FACE_SIZE, MIN_PRESENCE, NO_FACE, OK,
  SEVERAL_FACES, UNREADABLE,
} from './constants.mjs';
import { Detector } from './detector.mjs';
import { Landmarker, Roi } from './landmarks.mjs';
import { foreheadBox, rollDegrees, squareBox } from './regions.mjs';

/** The largest of 8, 4, 2 (else 1) whose reduction keeps both sides at least `minSide` px. */
export function reductionFactor(width, height, minSide = DECODE_SIZE) {
  for (const s of [8, 4, 2]) if (width >= s * minSide && height >= s * minSide) return s;
  return 1;
}

/** `image` (RGB) framed by pad = floor(fraction * max(W, H) + 0.5) pixels of `fill`: {image, pad}. */
export function addBorder(image, fraction = FALLBACK_BORDER, fill = FALLBACK_FILL) {
  const { width: W, height: H } = image;
  const pad = Math.floor(fraction * Math.max(W, H) + 0.5);
  const w = W + 2 * pad;
  const h = H + 2 * pad;
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) data.set(fill, i * 3);
  for (let y = 0; y < H; y++) data.set(image.data.subarray(y * W * 3, (y + 1) * W * 3), ((y + pad) * w + pad) * 3);
  return { image: { data, width: w, height: h, mode: 'RGB' }, pad };
}

/** One face, in pixels of the upright full-resolution photo (see skinage/find/result.py's Face). */
export class Face {
  constructor({ box, forehead, landmarks, score, keypoints, presence, roll, detection }) {
    Object.assign(this, { box, forehead, landmarks, score, keypoints, presence, roll, detection });
  }

  /** Width of the face box in pixels. */
  get width() {
    return this.box[2] - this.box[0];
  }

  /** Area of the detector's box (before squaring and clamping). */
  get area() {
    const [x0, y0, x1, y1] = this.detection;
    return (x1 - x0) * (y1 - y0);
  }

  /** The 'face' or 'forehead' box. */
  region(name) {
    if (name === 'face') return this.box;
    if (name === 'forehead') return this.forehead;
    throw new Error(`region must be 'face' or 'forehead', not ${name}`);
  }
}

const pct = (x) => `${Math.round(x * 100)}%`;

/** [status, reason] for `faces` (largest first); `profiles`: faces in profile set aside. */
export function statusOf(faces, profiles = 0) {
  if (!faces.length && profiles) {
    return [NO_FACE, 'only a face in profile (turned sideways) was found: the face must look roughly towards the camera'];
  }
  if (!faces.length) {
    return [NO_FACE, 'no face found: the face must look roughly towards the camera, be uncovered and fill a fair part of the photo'];
  }
  const first = faces[0];
  const rivals = faces.slice(1).filter((f) => f.area >= COMPARABLE_AREA * first.area);
  if (rivals.length) {
    return [SEVERAL_FACES, `${1 + rivals.length} faces of comparable size (the second largest is ${pct(rivals[0].area / first.area)} `
      + `of the largest's area, ${pct(COMPARABLE_AREA)} or more counts): crop the photo to one person`];
  }
  if (first.width < MIN_FACE_SIZE) {
    return [FACE_TOO_SMALL, `the face is ${first.width.toFixed(0)} px wide, fewer than the ${MIN_FACE_SIZE} px `
      + 'its landmarks need: use a larger or closer photo'];
  }
  const others = faces.length > 1 ? ` (and ${faces.length - 1} much smaller face(s), ignored)` : '';
  return [OK, `one face, ${first.width.toFixed(0)} px wide, detector score ${first.score.toFixed(2)}${others}`];
}

/** What the finder returns for a file that cannot be decoded. */
export function unreadable(detail) {
  return { faces: [], status: UNREADABLE, reason: `the file cannot be read as an image: ${detail}`, size: null };
}

/** The two sessions (BlazeFace short-range, FaceMesh) and the pipeline around them. */
export class Finder {
  /** `ort`: the onnxruntime-web module; `detector`, `landmarks`: its InferenceSessions. */
  constructor(ort, detector, landmarks) {
    this.detector = new Detector(ort, detector);
    this.landmarker = new Landmarker(ort, landmarks);
  }

  /**
   * Faces in a decoded photo: `work` the upright RGB image the finder reads ({data, width, height,
   * mode: 'RGB'}, reduced by `factor`), `size` = [W, H] of the full-resolution photo. When the first
   * pass finds no face, a second pass runs on `work` framed by a grey border (addBorder).
   * Returns {faces (largest first), status, reason, size, profiles, border}.
   */
  async find(work, factor, size) {
    let { faces, profiles } = await this.faces(work, factor, size);
    let border = 0;
    if (!faces.length && FALLBACK_BORDER > 0) {
      const { image: framed, pad } = addBorder(work);
      const again = await this.faces(framed, factor, size, pad);
      if (again.faces.length) [faces, profiles, border] = [again.faces, again.profiles, pad * factor];
    }
    faces.sort((a, b) => b.area - a.area); // stable, as Python's sort
    let [status, reason] = statusOf(faces, profiles);
    if (border) reason += ' (found with a border added around the photo: the face fills it)';
    return { faces, status, reason, size, profiles, border };
  }

  /** {faces, profiles} in the working image, whose pixel offset + i is the photo's reduced pixel i. */
  async faces(work, factor, size, offset = 0) {
    const faces = [];
    let profiles = 0;
    for (const det of await this.detector.detect(work)) {
      if (det.eyeSpan < MIN_EYE_SPAN) {
        profiles += 1;
        continue;
      }
      const face = await this.face(work, det, factor, size, offset);
      if (face !== null) faces.push(face);
    }
    return { faces, profiles };
  }

  /** FaceMesh on one detection of the working image; null when FaceMesh sees no face. */
  async face(work, det, factor, size, offset = 0) {
    const roi = Roi.fromDetection(det.box, det.keypoints);
    const { points, presence } = await this.landmarker.landmarks(work, roi);
    if (presence < MIN_PRESENCE) return null;
    for (let i = 0; i < points.length; i += 3) {
      points[i] = (points[i] - offset) * factor; // x, y and depth alike: full-resolution pixels
      points[i + 1] = (points[i + 1] - offset) * factor;
      points[i + 2] *= factor;
    }
    const box = det.box.map((v) => (v - offset) * factor);
    return new Face({
      box: squareBox(box, size), forehead: foreheadBox(points, size), landmarks: points, score: det.score,
      keypoints: det.keypoints.map((v) => (v - offset) * factor), presence, roll: rollDegrees(points), detection: box,
    });
  }
}
