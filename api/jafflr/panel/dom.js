// Small DOM helpers. Text from the machine (order names, details) only ever goes into
// textContent, never into HTML.

export const $ = (id) => document.getElementById(id);

export function make(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children);
  return node;
}

// Change text only when it changed: screen readers announce changes in live regions.
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// A result line under a form: kind is '', 'busy', 'ok' or 'error' (styled, and said).
export function say(node, text, kind = '') {
  setText(node, text);
  node.dataset.kind = kind;
}

// The machine's time (epoch seconds) as a clock time.
export function clock(wall) {
  if (wall === null || wall === undefined) return '–';
  return new Date(wall * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')} min`;
}

// 'lid-open' -> 'Lid open', 'well-done' -> 'Well done'
export function words(name) {
  const text = String(name || '').replace(/-/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}
