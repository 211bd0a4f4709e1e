// The metadata of an ONNX file (ModelProto.metadata_props), read from its bytes with a few lines of
// protobuf decoding: onnxruntime-web does not expose it. skinage's exported files carry their
// description under the key 'skinage' (skinage/runtime/onnx_io.py METADATA_KEY): classes, ordinal,
// preprocessing (the Preprocess), output.class_rule, precision.

const METADATA_PROPS = 14; // ModelProto field number
const KEY = 1;
const VALUE = 2;

function varint(buf, pos) {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated protobuf varint');
    const b = buf[pos++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, pos];
    scale *= 128;
  }
}

/** The fields of one protobuf message as [field, wireType, start, end] (length-delimited: the payload). */
function* fields(buf, start = 0, end = buf.length) {
  let pos = start;
  while (pos < end) {
    let key;
    [key, pos] = varint(buf, pos);
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) {
      const at = pos;
      [, pos] = varint(buf, pos);
      yield [field, wire, at, pos];
    } else if (wire === 1) {
      yield [field, wire, pos, pos + 8];
      pos += 8;
    } else if (wire === 2) {
      let len;
      [len, pos] = varint(buf, pos);
      yield [field, wire, pos, pos + len];
      pos += len;
    } else if (wire === 5) {
      yield [field, wire, pos, pos + 4];
      pos += 4;
    } else {
      throw new Error(`unsupported protobuf wire type ${wire}`);
    }
    if (pos > end) throw new Error('truncated protobuf message');
  }
}

/** All metadata_props of an ONNX file as {key: value} (strings). */
export function onnxMetadata(bytes) {
  const buf = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const text = new TextDecoder();
  const out = {};
  for (const [field, wire, a, b] of fields(buf)) {
    if (field !== METADATA_PROPS || wire !== 2) continue;
    let key = '';
    let value = '';
    for (const [f, w, c, d] of fields(buf, a, b)) {
      if (w !== 2) continue;
      if (f === KEY) key = text.decode(buf.subarray(c, d));
      else if (f === VALUE) value = text.decode(buf.subarray(c, d));
    }
    out[key] = value;
  }
  return out;
}

/** skinage's description of an exported model (the JSON under 'skinage'); throws when absent. */
export function skinageMetadata(bytes) {
  const props = onnxMetadata(bytes);
  if (!('skinage' in props)) throw new Error('this .onnx file has no skinage metadata (export it with `skinage export RUN`)');
  return JSON.parse(props.skinage);
}
