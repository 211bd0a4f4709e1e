// The EXIF orientation of a photo file (tag 0x0112 of IFD0), read as Pillow's getexif() does for
// skinage.data.images._orientation: 1 (upright) when absent, unreadable or outside 1..8.
// JPEG (APP1 "Exif"), PNG (eXIf chunk) and WebP (EXIF chunk) are read; other formats give 1.

function tiffOrientation(view, start, end) {
  if (end - start < 8) return 1;
  const order = view.getUint16(start);
  if (order !== 0x4949 && order !== 0x4d4d) return 1;
  const le = order === 0x4949;
  const u16 = (o) => view.getUint16(start + o, le);
  const u32 = (o) => view.getUint32(start + o, le);
  if (u16(2) !== 42) return 1;
  const ifd = u32(4);
  if (ifd + 2 > end - start) return 1;
  const n = u16(ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > end - start) return 1;
    if (u16(e) === 0x0112) {
      const type = u16(e + 2);
      // SHORT (3) as stored; Pillow also accepts LONG (4) and takes the int
      const v = type === 3 ? u16(e + 8) : type === 4 ? u32(e + 8) : 1;
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

function jpegOrientation(view) {
  let i = 2;
  while (i + 4 <= view.byteLength) {
    if (view.getUint8(i) !== 0xff) return 1;
    const marker = view.getUint8(i + 1);
    if (marker === 0xff) { i += 1; continue; }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { i += 2; continue; }
    if (marker === 0xda || marker === 0xd9) return 1; // image data: no EXIF before it
    const len = view.getUint16(i + 2);
    if (marker === 0xe1 && len >= 8 && i + 10 <= view.byteLength) {
      const id = String.fromCharCode(...new Uint8Array(view.buffer, view.byteOffset + i + 4, 6));
      if (id === 'Exif\0\0') return tiffOrientation(view, i + 10, Math.min(view.byteLength, i + 2 + len));
    }
    i += 2 + len;
  }
  return 1;
}

function pngOrientation(view) {
  let i = 8;
  while (i + 8 <= view.byteLength) {
    const len = view.getUint32(i);
    const type = String.fromCharCode(view.getUint8(i + 4), view.getUint8(i + 5), view.getUint8(i + 6), view.getUint8(i + 7));
    if (type === 'eXIf') return tiffOrientation(view, i + 8, Math.min(view.byteLength, i + 8 + len));
    if (type === 'IDAT' || type === 'IEND') return 1;
    i += 12 + len;
  }
  return 1;
}

function webpOrientation(view) {
  let i = 12;
  while (i + 8 <= view.byteLength) {
    const type = String.fromCharCode(view.getUint8(i), view.getUint8(i + 1), view.getUint8(i + 2), view.getUint8(i + 3));
    const len = view.getUint32(i + 4, true);
    if (type === 'EXIF') {
      let s = i + 8;
      // some writers keep the JPEG-style "Exif\0\0" prefix
      if (view.getUint32(s) === 0x45786966) s += 6;
      return tiffOrientation(view, s, Math.min(view.byteLength, i + 8 + len));
    }
    i += 8 + len + (len & 1);
  }
  return 1;
}

/**
 * @param {ArrayBuffer|Uint8Array} bytes  the file's bytes (the first 64 KB are enough for a JPEG)
 * @returns {number} the EXIF orientation, 1..8
 */
export function readOrientation(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const view = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  try {
    if (u8.length >= 4 && u8[0] === 0xff && u8[1] === 0xd8) return jpegOrientation(view);
    if (u8.length >= 8 && u8[0] === 0x89 && u8[1] === 0x50 && u8[2] === 0x4e && u8[3] === 0x47) return pngOrientation(view);
    if (u8.length >= 12 && view.getUint32(0) === 0x52494646 && view.getUint32(8) === 0x57454250) return webpOrientation(view);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e; // a truncated header: no orientation, as in Python
  }
  return 1;
}
