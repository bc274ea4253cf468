// What the panel draws of the machine: the current toastie, the queue, the plate and bin
// charts, and the stock. Each render function takes what it shows and updates the page in
// place (rows and list items are kept by id, so focus and screen readers stay calm).

import { drawChart } from './chart.js';
import { $, clock, duration, make, setText, words } from './dom.js';

export const PLATE_WINDOW_S = 600;
const BIN_WINDOW_S = 1800;

// The toastie furthest along in the machine: in the press, on the tray, or being assembled.
function currentOrder(st, orders) {
  const id = st && (st.press || st.tray || st.assembling);
  return id ? orders.find((o) => o.id === id) || { id, step: '', progress: 0 } : null;
}

function describeOrder(o) {
  const fillings = (o.ingredients || []).join(', ');
  return `${o.id}${o.name ? ` for ${o.name}` : ''}: ${fillings}${o.doneness ? `, ${words(o.doneness).toLowerCase()}` : ''}`;
}

function setBar(bar, fill, fraction, text) {
  const pct = Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100);
  fill.style.width = `${pct}%`;
  bar.setAttribute('aria-valuenow', String(pct));
  bar.setAttribute('aria-valuetext', text);
}

export function renderNow(st, orders) {
  const order = currentOrder(st, orders);
  if (order) {
    setText($('now-order'), describeOrder(order));
    setText($('now-step'), words(order.step || order.state));
    setBar($('now-bar'), $('now-bar-fill'), order.progress, `${order.step}, ${Math.round((order.progress || 0) * 100)}%`);
    setText($('now-left'), order.time_left_s === null || order.time_left_s === undefined ? ''
      : `About ${duration(order.time_left_s)} left, ready ${clock(order.ready_at)}`);
  } else {
    setText($('now-order'), 'No toastie in the machine.');
    setText($('now-step'), '');
    setBar($('now-bar'), $('now-bar-fill'), 0, 'nothing to do');
    setText($('now-left'), '');
  }
  const waiting = st ? st.queue.length : 0;
  setText($('now-queue'), st ? `${waiting} waiting (room for ${st.queue.max - waiting} more)` : '');
}

function readyText(o) {
  if (o.state === 'done') return `Done ${clock(o.finished_at)}`;
  if (o.state === 'failed') return o.failure ? o.failure.detail || '' : '';
  if (o.state === 'queued' && o.waiting) return o.waiting;   // held: says why (a fault, a pause)
  if (o.state === 'cancelled' || o.ready_at === null || o.ready_at === undefined) return '';
  return `Ready ${clock(o.ready_at)} (in ${duration(o.time_left_s)})`;
}

function stateText(o) {
  if (o.state === 'failed') return `Failed: ${words(o.failure ? o.failure.reason : 'unknown')}`;
  if (o.state === 'queued' && o.queue_position !== null) return `Queued, number ${o.queue_position + 1}`;
  const step = o.step && o.step !== o.state && !['done', 'cancelled'].includes(o.state) ? `: ${o.step}` : '';
  return o.state === 'done' ? 'Done' : `${words(o.state)}${step}`;
}

const queueRows = new Map();

function queueRow(o, onCancel) {
  let row = queueRows.get(o.id);
  if (!row) {
    row = make('tr', { 'data-order': o.id },
      make('td', { class: 'q-what' }, make('b'), make('br'), make('span', { class: 'small' })),
      make('td', { class: 'q-state' }, make('span', { class: 'q-state-text' }),
        make('div', { class: 'bar-track small', 'aria-hidden': 'true' }, make('div', { class: 'bar-fill' })),
        make('span', { class: 'q-ready small' })),
      make('td', { class: 'q-act' }, make('button', { type: 'button', class: 'cancel', text: 'Cancel',
        'aria-label': `Cancel toastie ${o.id}`, onclick: () => onCancel(o.id, row.querySelector('.q-ready')) })));
    queueRows.set(o.id, row);
  }
  row.dataset.state = o.state;
  setText(row.querySelector('.q-what b'), `${o.id}${o.name ? ` for ${o.name}` : ''}`);
  setText(row.querySelector('.q-what .small'), `${(o.ingredients || []).join(', ')} · ${words(o.doneness).toLowerCase()}`);
  setText(row.querySelector('.q-state-text'), stateText(o));
  const active = !['done', 'failed', 'cancelled'].includes(o.state);
  row.querySelector('.bar-track').hidden = !active;
  row.querySelector('.bar-fill').style.width = `${Math.round((o.progress || 0) * 100)}%`;
  setText(row.querySelector('.q-ready'), readyText(o));
  row.querySelector('.cancel').hidden = o.state !== 'queued';
  return row;
}

export function renderQueue(orders, onCancel) {
  const body = $('queue-rows');
  const wanted = orders.map((o) => queueRow(o, onCancel));
  wanted.forEach((row, i) => {
    if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null);
  });
  for (const [id, row] of queueRows) {
    if (!orders.some((o) => o.id === id)) { row.remove(); queueRows.delete(id); }
  }
  $('queue-empty').hidden = orders.length > 0;
}

export function renderPlate(st, samples, wall) {
  const plate = st && st.plate;
  setText($('plate-temp'), plate && plate.temp_c !== null ? `${plate.temp_c.toFixed(0)} °C` : '–');
  setText($('plate-target'), !plate ? '' : plate.target_c === null ? 'heater off'
    : `target ${plate.target_c.toFixed(0)} °C${plate.at_target ? ', at target' : ''}`);
  if (wall === null) return;
  drawChart($('plate-chart'), {
    t0: wall - PLATE_WINDOW_S, t1: wall, yMin: 0, yMax: 250, unit: '°',
    series: [
      { cls: 'line-target', points: samples.map((s) => [s.wall, s.target_c]) },
      { cls: 'line-temp', points: samples.map((s) => [s.wall, s.temp_c]) },
    ],
  });
}

export function renderBin(stock) {
  const bin = stock && stock.bin;
  if (!bin) return;
  setText($('bin-temp'), bin.temp_c !== null ? `${bin.temp_c.toFixed(1)} °C` : '–');
  const notes = [`limit ${bin.limit_c} °C`, `chiller ${bin.chiller_on ? 'on' : 'off'}`];
  if (bin.above_5c_minutes > 0) notes.push(`above ${bin.limit_c} °C for ${bin.above_5c_minutes} min`);
  if (!bin.ok) notes.push(`sensor fault: ${bin.error}`);
  setText($('bin-note'), notes.join(' · '));
  const history = bin.history || [];
  if (!history.length) return;
  const t1 = history[history.length - 1].wall;
  drawChart($('bin-chart'), {
    t0: t1 - BIN_WINDOW_S, t1, yMin: 0, yMax: 8, unit: '°',
    series: [{ cls: 'line-bin', points: history.map((h) => [h.wall, h.c]) }],
    limits: [{ value: bin.limit_c, label: `${bin.limit_c} °C limit`, cls: 'limit' }],
  });
}

const FOOD = { ok: 'OK', 'use-soon': 'Use soon', discard: 'Discard', 'needs-check': 'Check it' };

export function bayProblem(bay) {
  if (!bay.sensor.ok) return 'scale fault';
  if (bay.food_safety.locked) return bay.food_safety.needs_check ? 'locked: check it' : 'locked: discard';
  if (bay.available <= 0) return 'out of stock';
  return '';
}

const stockItems = new Map();

export function renderStock(stock) {
  if (!stock) return;
  const list = $('stock-list');
  const bays = stock.bays;
  const full = Math.max(10, ...bays.map((b) => b.units || 0));
  if (stockItems.size === 0) list.replaceChildren();
  for (const bay of bays) {
    let item = stockItems.get(bay.name);
    if (!item) {
      item = make('li', { class: 'bay', 'data-bay': bay.name },
        make('div', { class: 'bay-head' }, make('span', { class: 'bay-name', text: words(bay.name) }),
          make('span', { class: 'bay-count' })),
        make('div', { class: 'bar-track', 'aria-hidden': 'true' }, make('div', { class: 'bar-fill' })),
        make('p', { class: 'bay-foot' }, make('span', { class: 'badge' }), make('span', { class: 'bay-note' })));
      stockItems.set(bay.name, item);
      list.append(item);
    }
    const problem = bayProblem(bay);
    item.dataset.food = bay.food_safety.state;
    item.dataset.problem = problem ? 'yes' : 'no';
    setText(item.querySelector('.bay-count'), bay.units === null ? 'unknown'
      : `${bay.available} available${bay.reserved ? `, ${bay.reserved} reserved` : ''} (${bay.units} in the bay)`);
    const fill = item.querySelector('.bar-fill');
    fill.style.width = `${Math.round(((bay.available || 0) / full) * 100)}%`;
    fill.dataset.low = bay.available <= 2 ? 'yes' : 'no';
    const badge = item.querySelector('.badge');
    badge.dataset.food = bay.sensor.ok ? bay.food_safety.state : 'sensor';
    setText(badge, bay.sensor.ok ? FOOD[bay.food_safety.state] || bay.food_safety.state : 'Scale fault');
    setText(item.querySelector('.bay-note'), ` ${bay.food_safety.minutes_above_5c} min above 5 °C`
      + (bay.grams !== null ? ` · ${Math.round(bay.grams)} g` : '') + (problem ? ` · ${problem}` : ''));
  }
}
