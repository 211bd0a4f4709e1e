// Runs the page's pixel code (skinage/app/web/*.mjs) on cases written by tests/test_app_pixels.py.
// usage: node run_cases.mjs CASES.json [RESULTS.json]   (each case names its raw input and output files;
// $SKINAGE_WEB_DIR points at another copy of the modules, e.g. a mutated one to see a test fail)
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const web = resolve(dirname(fileURLToPath(import.meta.url)), process.env.SKINAGE_WEB_DIR ?? '../../skinage/app/web');
const { resize, reduce } = await import(pathToFileURL(resolve(web, 'resample.mjs')).href);
const { cropResize, expandBox, transpose, rgbaToRgb } = await import(pathToFileURL(resolve(web, 'boxes.mjs')).href);
const { readOrientation } = await import(pathToFileURL(resolve(web, 'exif.mjs')).href);

const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const results = [];
for (const c of cases) {
  const t0 = performance.now();
  const bytes = c.input ? new Uint8Array(readFileSync(c.input)) : null;
  const img = bytes && { data: bytes, width: c.width, height: c.height, mode: c.mode };
  let out;
  try {
    if (c.op === 'resize') out = resize(img, c.size[0], c.size[1], c.params);
    else if (c.op === 'reduce') out = reduce(img, c.factor[0], c.factor[1], c.box);
    else if (c.op === 'transpose') out = transpose(img, c.orientation, c.inverse);
    else if (c.op === 'rgbaToRgb') out = { data: rgbaToRgb(bytes, c.width, c.height), width: c.width, height: c.height };
    else if (c.op === 'cropResize') out = cropResize(bytes, c.width, c.height, c.bbox, c.params);
    else if (c.op === 'expandBox') {
      results.push({ box: expandBox(c.bbox, c.size, c.margin, c.square) });
      continue;
    } else if (c.op === 'orientation') {
      results.push({ orientation: readOrientation(bytes) });
      continue;
    } else throw new Error(`unknown op ${c.op}`);
  } catch (e) {
    results.push({ error: String(e.message ?? e), reason: e.reason ?? null });
    continue;
  }
  writeFileSync(c.output, out.data);
  results.push({ width: out.width, height: out.height, box: out.box ?? null, draftScale: out.draftScale ?? null, ms: performance.now() - t0 });
}
writeFileSync(process.argv[3] ?? process.argv[2].replace(/\.json$/, '.out.json'), JSON.stringify(results));
