// Runs the page's finder and classifier arithmetic (skinage/app/web) on cases written by
// tests/test_app_finder.py, which compares every number with the Python finder's.
// usage: node finder_cases.mjs CASES.json OUT.json  (inputs: raw little-endian files named by the cases)
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const web = resolve(dirname(fileURLToPath(import.meta.url)), process.env.SKINAGE_WEB_DIR ?? '../../skinage/app/web');
const load = (p) => import(pathToFileURL(resolve(web, p)).href);
const constants = await load('find/constants.mjs');
const { ssdAnchors } = await load('find/anchors.mjs');
const { letterbox, detectorTensor, warpSquareTensor, squareToImage } = await load('find/imaging.mjs');
const { decode, weightedNms, toImage, npSum, Detection } = await load('find/detector.mjs');
const { Roi } = await load('find/landmarks.mjs');
const { foreheadBox, squareBox, eyeAxis } = await load('find/regions.mjs');
const { statusOf, reductionFactor, addBorder, Face } = await load('find/finder.mjs');
const { classIndex, meanLuma } = await load('classify.mjs');
const { skinageMetadata } = await load('onnxmeta.mjs');

const bytes = (f) => new Uint8Array(readFileSync(f));
const f32 = (f) => { const b = readFileSync(f); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };
const f64 = (f) => { const b = readFileSync(f); return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)); };
const rgb = (c) => ({ data: bytes(c.image), width: c.width, height: c.height, mode: 'RGB' });

const ops = {
  constants: () => ({ constants }),
  anchors: () => ({ anchors: Array.from(ssdAnchors()) }),
  letterbox: (c) => {
    const { square, lb } = letterbox(rgb(c), c.size);
    writeFileSync(c.out, square);
    writeFileSync(c.out + '.tensor', Buffer.from(detectorTensor(square, c.size).buffer));
    return { lb: { width: lb.width, height: lb.height, left: lb.left, top: lb.top } };
  },
  warp: (c) => {
    const roi = new Roi(...c.roi);
    writeFileSync(c.out, Buffer.from(roi.tensor(rgb(c), c.n).buffer));
    return {};
  },
  detect: (c) => {
    const { lb } = letterbox(rgb(c), constants.DETECTOR_SIZE);
    const dets = weightedNms(decode(f32(c.regressors), f32(c.logits), ssdAnchors()))
      .map(({ box, kps, score }) => toImage(box, kps, score, lb));
    return { detections: dets.map((d) => ({ box: d.box, keypoints: Array.from(d.keypoints), score: d.score, eyeSpan: d.eyeSpan })) };
  },
  landmarks: (c) => {
    const roi = Roi.fromDetection(c.box, Float64Array.from(c.keypoints));
    const pts = roi.toImage(f64(c.points));
    return { roi: [roi.cx, roi.cy, roi.side, roi.cos, roi.sin], points: Array.from(pts) };
  },
  regions: (c) => {
    const lm = f64(c.landmarks);
    return { forehead: foreheadBox(lm, c.size), face: squareBox(c.box, c.size), axis: eyeAxis(lm) };
  },
  status: (c) => {
    const faces = c.faces.map((f) => new Face({ box: f.box, detection: f.detection, score: f.score }));
    return { status: statusOf(faces, c.profiles) };
  },
  border: (c) => {
    const { image, pad } = addBorder(rgb(c));
    writeFileSync(c.out, image.data);
    return { pad, width: image.width, height: image.height };
  },
  reduction: (c) => ({ factors: c.sizes.map(([w, h]) => reductionFactor(w, h)) }),
  npsum: (c) => ({ sums: c.arrays.map((a) => npSum(Float64Array.from(a))) }),
  classes: (c) => ({ indices: c.probs.map((p) => classIndex(p, c.ordinal)) }),
  luma: (c) => ({ luma: meanLuma(bytes(c.image)) }),
  meta: (c) => ({ meta: skinageMetadata(bytes(c.model)) }),
};

const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = cases.map((c) => {
  try {
    return ops[c.op](c);
  } catch (e) {
    return { error: String(e.stack || e) };
  }
});
writeFileSync(process.argv[3], JSON.stringify(out));
