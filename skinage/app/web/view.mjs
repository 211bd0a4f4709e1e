// What the page shows: the photo with its boxes, the crop, the grade with its bars, a refusal, the
// model card. DOM only (no inline HTML from data: text goes in through textContent).

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

const REFUSALS = {
  no_face: 'No face found',
  several_faces: 'Several faces',
  face_too_small: 'Face too small',
  unreadable: 'Not a readable image',
  too_dark: 'Too dark',
};

export function clearViews() {
  for (const id of ['photo-view', 'crop']) {
    const c = $(id);
    c.width = 0;
    c.height = 0;
    c.closest('figure').hidden = true;
  }
}

/** The photo (scaled to at most 720 px wide) with the chosen face's box and forehead, other faces dashed. */
export function drawPhoto(canvas, photo, found) {
  const scale = Math.min(1, 720 / photo.width);
  canvas.width = Math.max(1, Math.round(photo.width * scale));
  canvas.height = Math.max(1, Math.round(photo.height * scale));
  const ctx = canvas.getContext('2d');
  ctx.drawImage(photo.bitmap, 0, 0, canvas.width, canvas.height);
  const rect = (b, colour, dash = []) => {
    ctx.setLineDash(dash);
    ctx.strokeStyle = colour;
    ctx.lineWidth = Math.max(2, canvas.width / 90);
    ctx.strokeRect(b[0] * scale, b[1] * scale, (b[2] - b[0]) * scale, (b[3] - b[1]) * scale);
  };
  (found?.faces || []).forEach((f, i) => {
    rect(f.box, '#2f7de1', i ? [6, 4] : []);
    if (i === 0) rect(f.forehead, '#f0a020');
  });
  canvas.closest('figure').hidden = false;
}

/** The size x size RGB crop the model read. */
export function drawCrop(canvas, crop) {
  const { width: w, height: h, data } = crop;
  canvas.width = w;
  canvas.height = h;
  const img = new ImageData(w, h);
  for (let i = 0, j = 0; i < w * h; i++, j += 3) {
    img.data[i * 4] = data[j];
    img.data[i * 4 + 1] = data[j + 1];
    img.data[i * 4 + 2] = data[j + 2];
    img.data[i * 4 + 3] = 255;
  }
  canvas.getContext('2d').putImageData(img, 0, 0);
  canvas.closest('figure').hidden = false;
}

function timing(out) {
  const parts = Object.entries(out.times || {}).map(([k, v]) => `${k} ${Math.round(v)}`);
  return `${Math.round(out.ms)} ms on this device${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

export function showGrade(result, out, { card, classifier }) {
  const verdict = $('verdict');
  verdict.replaceChildren(el('span', { class: 'label' }, `${card.task?.label || 'Grade'}: `), el('strong', {}, out.class));
  result.className = 'ok';
  const bars = $('bars');
  bars.replaceChildren(...classifier.classes.map((name, k) => {
    const p = out.probs[k];
    const bar = el('span', { class: 'bar' });
    bar.style.width = `${Math.max(0.5, 100 * p).toFixed(1)}%`;
    return el('li', { class: k === out.index ? 'chosen' : '' }, el('span', { class: 'name' }, name),
      el('span', { class: 'track' }, bar), el('span', { class: 'pct' }, `${(100 * p).toFixed(0)} %`));
  }));
  bars.hidden = false;
  $('rule').textContent = classifier.ordinal
    ? 'The grade is the rank: the number of levels k with P(grade > k) above 50 %, not always the tallest bar.'
    : 'The grade is the most probable class.';
  $('timing').textContent = timing(out);
}

export function showRefusal(result, out) {
  result.className = 'refused';
  $('verdict').replaceChildren(el('strong', {}, REFUSALS[out.status] || out.status), el('span', { class: 'reason' }, ` — ${out.reason}`));
  $('bars').replaceChildren();
  $('bars').hidden = true;
  $('rule').textContent = 'No grade is given for this photo.';
  $('timing').textContent = timing(out);
}

const fmt = (v, pct = false) => (v === null || v === undefined ? '–' : pct ? `${(100 * v).toFixed(0)} %` : Number(v).toFixed(2));

function figuresTable(card) {
  const test = card.test;
  if (!test?.systems?.length) return el('p', {}, test?.note || 'No test figures: the run was not evaluated.');
  const metrics = test.metrics;
  const head = el('tr', {}, el('th', {}, ''), ...metrics.map((m) => el('th', {}, m.label)));
  const rows = test.systems.map((s) => el('tr', { class: s.name === 'model' ? 'model' : '' }, el('th', {}, s.label),
    ...metrics.map((m) => {
      const f = s.figures[m.key];
      if (!f) return el('td', {}, '–');
      const ci = f.ci ? el('small', {}, ` [${fmt(f.ci[0], m.pct)}, ${fmt(f.ci[1], m.pct)}]`) : null;
      return el('td', {}, fmt(f.value, m.pct), ci);
    })));
  return el('div', { class: 'scroll' }, el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows)),
    el('p', { class: 'small' }, test.note || ''));
}

/** The model card (card.json) as a few short sections. */
export function renderCard(root, card) {
  const dl = el('dl');
  const add = (k, v) => { if (v) dl.append(el('dt', {}, k), el('dd', {}, v)); };
  add('Task', card.task?.description);
  add('Classes', (card.classes || []).join(', '));
  add('Class rule', card.class_rule);
  add('Training data', card.training?.description);
  add('Input', card.preprocess?.description);
  add('Model file', card.model_file?.description);
  const refusals = el('ul', {}, ...Object.entries(card.refusals || {}).map(([k, r]) => el('li', {}, el('code', {}, k), ` ${r.rule}`)));
  root.replaceChildren(dl, el('h3', {}, 'Test figures (95 % intervals)'), figuresTable(card),
    el('h3', {}, 'When the page gives no grade'), refusals,
    el('p', { class: 'small' }, card.caveat || ''));
}
