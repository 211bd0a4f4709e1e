// Build-time measurement for `skinage app` (skinage/app/choose.py): the candidate model files run in
// this browser as the page runs them (onnxruntime-web, wasm, one thread, all graph optimisations) on
// the same crops Python read; for each crop, each candidate in turn (the order rotating), timed.
import * as ort from './ort/ort.wasm.min.mjs';

ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;
ort.env.wasm.numThreads = 1;

async function bytes(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

window.measure = async ({ names, n, size, warmup, input, output }) => {
  const crops = await bytes('crops.bin');
  const options = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
  const sessions = {};
  for (const name of names) sessions[name] = await ort.InferenceSession.create(await bytes(`${name}.onnx`), options);
  const one = size * size * 3;
  const tensor = (i) => new ort.Tensor('uint8', crops.subarray(i * one, (i + 1) * one), [1, size, size, 3]);
  for (const name of names) for (let w = 0; w < warmup; w++) await sessions[name].run({ [input]: tensor(0) });
  const out = Object.fromEntries(names.map((name) => [name, { probs: [], ms: [] }]));
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(i + k) % names.length];
      const t = performance.now();
      const r = await sessions[name].run({ [input]: tensor(i) });
      out[name].ms.push(performance.now() - t);
      out[name].probs.push(Array.from(r[output].data));
    }
  }
  return out;
};
window.ready = true;
