// Test page for tests/test_app_pixels_browser.py: decode a photo as the page will (fetch ->
// Blob -> createImageBitmap with the EXIF orientation applied -> canvas getImageData) and crop it
// with skinage/app/web/boxes.mjs; return the pixels (base64) for Python to compare with Pillow.
import { cropResize } from './web/boxes.mjs';
import { readOrientation } from './web/exif.mjs';

function b64(u8) {
  let s = '';
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  return btoa(s);
}

function rgbOf(rgba) {
  const n = rgba.length / 4;
  const rgb = new Uint8Array(n * 3);
  let opaque = true;
  for (let i = 0; i < n; i++) {
    rgb[i * 3] = rgba[i * 4];
    rgb[i * 3 + 1] = rgba[i * 4 + 1];
    rgb[i * 3 + 2] = rgba[i * 4 + 2];
    if (rgba[i * 4 + 3] !== 255) opaque = false;
  }
  return { rgb, opaque };
}

window.runPhoto = async (url, jobs, { returnPixels = true } = {}) => {
  const blob = await (await fetch(url)).blob();
  const orientation = readOrientation(new Uint8Array(await blob.arrayBuffer()));
  // colorSpaceConversion 'none': Pillow does not apply ICC profiles, so neither may the page
  const bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  const { width, height } = bitmap;
  const ctx = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const crops = jobs.map((job) => {
    try {
      const t0 = performance.now();
      const o = job.ignoreOrientation ? 1 : orientation;
      // job.reader: read only the rectangle the crop needs from the canvas (what a page does with a 12 MP photo)
      const source = job.reader ? (x, y, w, h) => ctx.getImageData(x, y, w, h).data : rgba;
      const r = cropResize(source, width, height, job.bbox, { ...job.params, orientation: o });
      return { data: b64(r.data), box: r.box, draftScale: r.draftScale, ms: performance.now() - t0 };
    } catch (e) {
      return { error: String(e.message ?? e), reason: e.reason ?? null };
    }
  });
  const { rgb, opaque } = rgbOf(rgba);
  return { width, height, orientation, opaque, rgb: returnPixels ? b64(rgb) : null, crops };
};
window.ready = true;
