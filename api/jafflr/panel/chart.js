// A line chart in SVG, drawn by hand: a few lines over a time window, gaps where a value
// is missing, horizontal limit lines, and labelled axes. Redrawn whole on every update.

const SVG = 'http://www.w3.org/2000/svg';
const M = { left: 44, right: 10, top: 12, bottom: 26 };

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceStep(span, ticks) {
  const raw = span / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = [1, 2, 5, 10].find((m) => m * power >= raw) * power;
  return unit;
}

// series: [{points: [[t, value|null], ...], cls}]; limits: [{value, label, cls}]
// window: {t0, t1} in seconds; yMin/yMax: the least range to show; unit: for tick labels.
// The viewBox follows the drawn size, so text is drawn at its real size on any screen.
export function drawChart(svg, { t0, t1, series, limits = [], yMin, yMax, unit }) {
  const W = Math.max(200, Math.round(svg.clientWidth || 600));
  const H = Math.max(120, Math.round(svg.clientHeight || 190));
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  for (const node of [...svg.childNodes]) {
    if (node.nodeName !== 'title') node.remove();
  }
  let lo = yMin;
  let hi = yMax;
  for (const s of series) {
    for (const [, v] of s.points) {
      if (v !== null && v !== undefined) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
  }
  const step = niceStep(hi - lo || 1, 5);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const x = (t) => M.left + ((t - t0) / (t1 - t0 || 1)) * (W - M.left - M.right);
  const y = (v) => H - M.bottom - ((v - lo) / (hi - lo || 1)) * (H - M.top - M.bottom);

  const axes = el('g', { class: 'axes' });
  for (let i = 0; lo + i * step <= hi + step / 2; i += 1) {
    const v = lo + i * step;
    axes.append(el('line', { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: 'grid' }));
    axes.append(el('text', { x: M.left - 6, y: y(v) + 5, 'text-anchor': 'end' },
      `${Number(v.toFixed(1))}${unit}`));
  }
  const minutes = (t1 - t0) / 60;
  const perMinute = (W - M.left - M.right) / minutes;
  const every = [1, 2, 5, 10, 15, 30].find((m) => m * perMinute >= 70) || 60;
  for (let m = 0; m <= minutes + 0.01; m += every) {
    const t = t1 - m * 60;
    axes.append(el('text', { x: x(t), y: H - 8, 'text-anchor': m === 0 ? 'end' : 'middle' },
      m === 0 ? 'now' : `−${m} min`));
  }
  svg.append(axes);

  for (const limit of limits) {
    if (limit.value < lo || limit.value > hi) continue;
    svg.append(el('line', { x1: M.left, x2: W - M.right, y1: y(limit.value), y2: y(limit.value), class: limit.cls }));
    svg.append(el('text', { x: W - M.right - 4, y: y(limit.value) - 6, 'text-anchor': 'end', class: `${limit.cls}-label` }, limit.label));
  }
  for (const s of series) {
    let d = '';
    let pen = false;
    for (const [t, v] of s.points) {
      if (v === null || v === undefined || t < t0) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)} ${y(v).toFixed(1)}`;
      pen = true;
    }
    if (d) svg.append(el('path', { d, class: s.cls }));
  }
}
