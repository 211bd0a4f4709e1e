// The page: load the models (onnxruntime-web, wasm, from this site only), then for each photo
// (file input, camera, drag and drop) run pipeline.mjs and show the photo with the face and
// forehead boxes, the crop the model read, the grade with a bar per class, the time taken; or the
// reason the photo was refused. #result carries the contract the tests read: data-n, data-status,
// data-class, data-index, data-probs, data-ms (and data-reason, data-face, data-forehead).

import * as ort from '../ort/ort.wasm.min.mjs';
import { Classifier } from './classify.mjs';
import { LANDMARK_SIZE } from './find/constants.mjs';
import { Finder } from './find/finder.mjs';
import { processPhoto } from './pipeline.mjs';
import { renderCard, showRefusal, showGrade, drawPhoto, drawCrop, clearViews } from './view.mjs';

const $ = (id) => document.getElementById(id);
const site = new URL('../', import.meta.url);

ort.env.wasm.wasmPaths = new URL('ort/', site).href; // the site's own copy: never a CDN
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
const SESSION = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };

const timeout = (ms) => new Promise((resolve) => setTimeout(() => resolve(false), ms));

/**
 * The site's files come through one cache, `skinage-<version>` (version.json, written by `skinage app`):
 * what the page fetches it keeps there, so the service worker, registered once the models are loaded,
 * finds them cached and fetches only the rest (nothing is downloaded twice), and serves the whole site
 * from that cache offline.
 */
async function siteCache() {
  if (!('caches' in self)) return null;
  try {
    const r = await fetch(new URL('version.json', site), { cache: 'no-cache' });
    return await caches.open(`skinage-${(await r.json()).version}`);
  } catch (e) {
    console.warn('no cache, so no offline use:', e.message || e);
    return null;
  }
}

async function bytesOf(path, cache) {
  const url = new URL(path, site).href;
  let r = cache ? await cache.match(url) : undefined;
  if (!r) {
    r = await fetch(url);
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    if (cache) await cache.put(url, r.clone()).catch(() => {});
  }
  return new Uint8Array(await r.arrayBuffer());
}

/** Register the service worker (offline use); true once it controls the page or is installed. */
async function offlineReady() {
  if (!('serviceWorker' in navigator) || !self.isSecureContext) return false;
  try {
    const reg = await navigator.serviceWorker.register(new URL('sw.js', site), { scope: site.pathname });
    return Boolean(await Promise.race([navigator.serviceWorker.ready.then(() => true), timeout(5000)])) || Boolean(reg.active);
  } catch (e) {
    console.warn('no service worker, so no offline use:', e.message || e);
    return false;
  }
}

async function load() {
  const status = $('status');
  const cache = await siteCache();
  const card = JSON.parse(new TextDecoder().decode(await bytesOf('card.json', cache)));
  renderCard($('card-body'), card);
  document.title = card.title || document.title;
  $('title').textContent = card.title || $('title').textContent;
  status.textContent = 'Loading the models…';
  const files = [card.files.model, card.files.detector, card.files.landmarks, 'ort/ort-wasm-simd-threaded.wasm'];
  const [model, det, mesh, wasm] = await Promise.all(files.map((f) => bytesOf(f, cache)));
  ort.env.wasm.wasmBinary = wasm; // from the cache: onnxruntime-web does not fetch it again
  const t0 = performance.now();
  const classifier = await Classifier.load(ort, model, SESSION);
  const finder = new Finder(ort, await ort.InferenceSession.create(det, SESSION), await ort.InferenceSession.create(mesh, SESSION));
  // warm up each session once: the first run is 2-3 times slower
  const s = classifier.pre.size;
  await classifier.probs(new Uint8Array(s * s * 3));
  await finder.detector.run({ data: new Uint8Array(64 * 64 * 3), width: 64, height: 64, mode: 'RGB' });
  await finder.landmarker.run(new Float32Array(3 * LANDMARK_SIZE * LANDMARK_SIZE));
  const ms = Math.round(performance.now() - t0);
  status.textContent = `Ready: models loaded in ${ms} ms. Your photo stays on this device.`;
  document.body.dataset.ready = 'true';
  offlineReady().then((ok) => {
    document.body.dataset.offline = ok ? 'true' : 'false';
    if (ok) status.textContent = `Ready, and works offline from now on: models loaded in ${ms} ms. Your photo stays on this device.`;
  });
  return { card, classifier, finder, minLuma: card.refusals.too_dark.min_luma };
}

const ready = load();
ready.catch((e) => {
  $('status').textContent = `The page could not start: ${e.message || e}`;
  document.body.dataset.ready = 'error';
});

let queue = Promise.resolve();
let count = 0;

async function handle(file) {
  const ctx = await ready;
  const out = await processPhoto(file, ctx);
  const result = $('result');
  clearViews();
  if (out.photo) drawPhoto($('photo-view'), out.photo, out.found);
  if (out.crop) drawCrop($('crop'), out.crop);
  if (out.status === 'ok') showGrade(result, out, ctx);
  else showRefusal(result, out);
  const d = result.dataset;
  d.status = out.status;
  d.reason = out.reason || '';
  d.class = out.status === 'ok' ? out.class : '';
  d.index = out.status === 'ok' ? String(out.index) : '';
  d.probs = out.status === 'ok' ? JSON.stringify(out.probs) : '[]';
  d.ms = out.ms.toFixed(1);
  const face = out.found?.faces?.[0];
  d.face = face ? JSON.stringify(face.box) : '';
  d.forehead = face ? JSON.stringify(face.forehead) : '';
  d.faces = String(out.found?.faces?.length ?? 0);
  d.luma = out.luma === undefined ? '' : String(out.luma);
  d.times = JSON.stringify(out.times);
  count += 1;
  d.n = String(count); // last: the tests wait for it
}

function enqueue(files) {
  for (const f of files) {
    queue = queue.then(() => handle(f)).catch((e) => {
      console.error(e);
      $('status').textContent = `Something went wrong: ${e.message || e}`;
    });
  }
}

for (const id of ['photo', 'gallery']) {
  $(id).addEventListener('change', (e) => {
    enqueue([...e.target.files]);
    e.target.value = ''; // the same photo again fires change again
  });
}
const drop = document.body;
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  document.body.classList.add('dragging');
});
drop.addEventListener('dragleave', () => document.body.classList.remove('dragging'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  document.body.classList.remove('dragging');
  enqueue([...(e.dataTransfer?.files || [])]);
});
