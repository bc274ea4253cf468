// The kitchen panel: polls jafflr about once a second and shows the machine, the plate,
// the bin, stock and the queue; orders toasties; the STOP button; banners that say what
// happened, what to do, and which part cannot be reached (jafflr itself, or chillybin).

import { call, HttpError, Orderer, orderSecrets, Unreachable } from './api.js';
import { Admin } from './admin.js';
import { $, clock, duration, make, say, setText, words } from './dom.js';
import { bayProblem, PLATE_WINDOW_S, renderBin, renderNow, renderPlate, renderQueue, renderStock } from './views.js';

const POLL_MS = 1000;
const STATE_NAMES = {
  available: 'Available', preheating: 'Preheating', assembling: 'Assembling',
  toasting: 'Toasting', faulted: 'Fault', paused: 'Paused', stopping: 'Restarting',
  stopped: 'Stopped', unknown: 'Connecting…',
};
const STOP_REASONS = new Set(['stopped', 'estop']);
// chillybin's alerts: what each is called, and what a person should do about it (jafflr's
// faults carry their own help).
const ALERT_TITLES = {
  'bin-warm': 'The bin is too warm', 'bin-sensor': 'The bin thermometer cannot be read',
  loadcell: 'The scale cannot be read', 'food-safety-use-soon': 'Use soon',
  'food-safety-discard': 'Throw it out', 'food-safety-needs-check': 'Check the food',
  'chiller-not-cooling': 'The chiller is not cooling',
};
const ALERT_ADVICE = {
  'bin-warm': 'Check that the lid is shut and the chiller runs. Time above 5 °C counts towards throwing food out.',
  'bin-sensor': 'The bin thermometer cannot be read, so food safety cannot be tracked: check its cable.',
  loadcell: 'This bay cannot be weighed, so its stock is unknown and it cannot be ordered from: check the load cell cable, then calibrate it.',
  'food-safety-use-soon': 'Use it now and do not top it up; it has to be thrown out at 4 hours above 5 °C.',
  'food-safety-discard': 'Throw it out and restock the bay (Admin, Restock).',
  'food-safety-needs-check': 'Nobody can tell how long this food was out (the machine was off and its clock is unsure): check it, then confirm what you checked (POST /v2/bays/<name>/food-check on chillybin), or replace it (Admin, Restock).',
  'chiller-not-cooling': 'The chiller runs but the bin does not get colder: check that the lid is shut and the chiller works. Time above 5 °C counts towards throwing food out.',
};

const view = {
  status: null, orders: [], stock: null, alerts: [], plate: [], plateWall: null,
  jafflr: { up: null, since: null, why: '' },
  chillybin: { up: null, since: null, why: '' },
  stopProblem: '', version: null, ticks: 0,
};
const orderer = new Orderer();
const admin = new Admin({ pollSoon: () => pollSoon(), changed: () => renderBanners() });

function mark(link, up, why = '') {
  if (up === false && link.up !== false) link.since = Date.now();
  link.up = up;
  link.why = why;
}

async function fetchPlate() {
  const last = view.plate.length ? view.plate[view.plate.length - 1].wall : null;
  const history = await call('GET', last === null ? '/v2/plate/history' : `/v2/plate/history?since=${last}`);
  if (view.plateWall !== null && history.wall < view.plateWall - 5) {
    view.plate = [];     // the machine's clock went back (a restart): start again next time
    view.plateWall = null;
    return;
  }
  view.plate.push(...history.samples);
  view.plateWall = history.wall;
  const from = history.wall - PLATE_WINDOW_S;
  while (view.plate.length && view.plate[0].wall < from) view.plate.shift();
}

async function poll() {
  const tick = view.ticks;
  view.ticks += 1;
  const wantAlerts = tick % 3 === 0;
  const [status, orders, stock, , alerts] = await Promise.allSettled([
    call('GET', '/v2/status'),
    call('GET', '/v2/toasties?limit=20'),
    call('GET', '/v2/stock'),
    fetchPlate(),
    wantAlerts ? call('GET', '/v2/chillybin/alerts') : Promise.resolve(null),
  ]);
  if (status.status === 'fulfilled') {
    mark(view.jafflr, true);
    if (view.version && status.value.version !== view.version) window.location.reload();
    view.version = status.value.version;
    view.status = status.value;
  } else if (status.reason instanceof Unreachable) {
    mark(view.jafflr, false, status.reason.message);
  } else {
    mark(view.jafflr, false, `it answers with an error: ${status.reason.message}`);
  }
  if (orders.status === 'fulfilled') view.orders = orders.value.orders;
  if (stock.status === 'fulfilled') {
    mark(view.chillybin, true);
    view.stock = stock.value;
  } else if (stock.reason instanceof HttpError) {
    mark(view.chillybin, false, stock.reason.message);
  } else {
    mark(view.chillybin, null);      // jafflr is not answering: chillybin is unknown
  }
  if (wantAlerts) view.alerts = alerts.status === 'fulfilled' ? alerts.value.alerts : [];
  if (view.status && view.status.state === 'faulted') view.stopProblem = '';
  render();
  admin.update(view, tick);
}

let timer = null;
let running = false;
let again = false;

async function loop() {
  if (running) { again = true; return; }
  running = true;
  clearTimeout(timer);
  try {
    await poll();
  } catch (error) {
    console.error('panel update failed', error);
  } finally {
    running = false;
    timer = setTimeout(loop, again ? 0 : POLL_MS);
    again = false;
  }
}

function pollSoon() {
  clearTimeout(timer);
  timer = setTimeout(loop, 0);
}

// -- rendering ------------------------------------------------------------------------
function render() {
  document.body.classList.toggle('jafflr-down', view.jafflr.up === false);
  document.body.classList.toggle('chillybin-down', view.chillybin.up === false);
  renderLinks();
  renderState();
  renderBanners();
  renderNow(view.status, view.orders);
  renderQueue(view.orders, cancel);
  renderPlate(view.status, view.plate, view.plateWall);
  renderBin(view.stock);
  renderStock(view.stock);
  renderFillings();
}

function renderLinks() {
  for (const [name, link] of [['jafflr', view.jafflr], ['chillybin', view.chillybin]]) {
    const li = $(`link-${name}`);
    const up = link.up === true ? 'online' : link.up === false ? 'unreachable' : 'unknown';
    li.dataset.up = up;
    setText(li.querySelector('b'), up);
  }
}

function machineState() {
  const st = view.status;
  if (!st) return 'unknown';
  if (st.state === 'faulted' && st.fault && STOP_REASONS.has(st.fault.reason)) return 'stopped';
  return st.state;
}

function renderState() {
  const state = machineState();
  $('machine-state').dataset.state = state;
  const stale = view.jafflr.up === false && view.status ? ' (last known)' : '';
  setText($('machine-state-text'), (STATE_NAMES[state] || words(state)) + stale);
}

function since(link) {
  return link.since ? ` since ${new Date(link.since).toLocaleTimeString()}` : '';
}

// Who may clear the fault (status.reset, from firmware/safety.py's CLEARED_BY) and, for one
// that needs a person at the machine, where the reset button stands. No countdown: the
// banner is rebuilt only when its text changes.
function whoClears(reset) {
  if (!reset || !reset.cleared_by) return [];
  if (reset.cleared_by !== 'at-machine') {
    return ['Cleared from this panel: once the cause is fixed, an admin presses Reset machine.'];
  }
  const b = reset.button || {};
  const now = reset.allowed ? 'The reset button was held: an admin may press Reset machine now (within 2 minutes of the hold).'
    : b.held ? 'The reset button is being held: keep it down for 2 seconds.'
      : 'The reset button has not been held since this fault: Reset machine here is refused until it is.';
  return [`Needs a person at the machine: look at it, hold the reset button on the machine for ${b.hold_s || 2} seconds, then an admin presses Reset machine within ${Math.round((b.armed_s || 120) / 60)} minutes.`, now];
}

function bannerList() {
  const list = [];
  const st = view.status;
  if (view.stopProblem) {
    list.push({ level: 'fault', title: 'STOP did not get through', lines: [view.stopProblem,
      'Use the red emergency-stop button on the machine, or switch it off at the wall.'] });
  }
  if (view.jafflr.up === false) {
    list.push({ level: 'down', id: 'down-jafflr', title: 'Cannot reach jafflr (the toastie machine\'s service)',
      lines: [`No answer${since(view.jafflr)}: ${view.jafflr.why}. What you see may be out of date.`,
        'Ordering and the STOP button on this screen need it: use the emergency stop on the machine if you must stop it. This screen keeps trying every second.'] });
  }
  if (st && st.fault && view.jafflr.up !== false) {
    const stopped = STOP_REASONS.has(st.fault.reason);
    const kept = st.fault.restored ? ' Kept from before jafflr restarted.' : '';
    const also = (st.later_faults || []).length ? [`Also latched since: ${st.later_faults.map(words).join(', ')}.`] : [];
    list.push({ level: 'fault', id: 'fault', reset: true,
      title: `${stopped ? 'Machine stopped' : 'Machine fault'}: ${words(st.fault.reason)}`,
      lines: [`${st.fault.detail}${st.fault.wall ? ` (at ${clock(st.fault.wall)})` : ''}.${kept}`,
        ...also, `What to do: ${st.fault.help}`, ...whoClears(st.reset)] });
  }
  if (view.chillybin.up === false) {
    list.push({ level: 'down', id: 'down-chillybin', title: 'Cannot reach chillybin (the chilly bin\'s service)',
      lines: [`jafflr answers, but chillybin does not${since(view.chillybin)}: ${view.chillybin.why}`,
        'Stock and the bin temperature are unknown, and no toastie can be ordered until it is back. This screen keeps trying every second.'] });
  }
  for (const alert of view.alerts) {
    const about = alert.bay ? `${words(alert.bay)}: ` : '';
    list.push({ level: 'warn', id: `alert-${alert.alert}${alert.bay ? `-${alert.bay}` : ''}`,
      title: `${about}${ALERT_TITLES[alert.alert] || words(alert.alert)}`,
      lines: [alert.detail, ALERT_ADVICE[alert.alert] || ''].filter(Boolean) });
  }
  if (st && st.state === 'paused') {
    list.push({ level: 'info', title: 'The queue is paused', lines: ['No new toastie starts until an admin resumes the queue.'] });
  }
  if (st && st.state === 'stopping') {
    list.push({ level: 'info', title: 'jafflr is restarting', lines: ['It takes no new toasties for a few seconds.'] });
  }
  return list;
}

let lastBanners = '';

function renderBanners() {
  const list = bannerList();
  const signature = JSON.stringify([list, admin.unlocked]);
  if (signature === lastBanners) return;      // rebuilt only on change: focus and speech stay calm
  lastBanners = signature;
  const box = $('banners');
  box.replaceChildren(...list.map((b, i) => {
    const titleId = `banner-${i}-title`;
    const node = make('div', { class: `banner banner-${b.level}`, role: 'group', 'aria-labelledby': titleId, id: b.id },
      make('h2', { class: 'banner-title', id: titleId, text: b.title }),
      ...b.lines.map((line) => make('p', { text: line })));
    if (b.reset) {
      node.append(admin.unlocked
        ? make('button', { type: 'button', class: 'reset', text: 'Reset machine', onclick: () => admin.reset() })
        : make('p', { class: 'small', text: 'An admin resets the machine: unlock Admin at the bottom of this page.' }));
    }
    return node;
  }));
}

async function cancel(id, where) {
  try {
    // Whoever ordered it (this tab kept its cancel_secret), or an admin.
    const secret = orderSecrets.get(id);
    await call('POST', `/v2/toasties/${encodeURIComponent(id)}/cancel`,
      secret ? { headers: { 'Order-Secret': secret } } : { admin: admin.unlocked });
  } catch (error) {
    setText(where, `Not cancelled: ${error.message}`);
  }
  pollSoon();
}

// -- ordering --------------------------------------------------------------------------
const fillingBoxes = new Map();

function renderFillings() {
  const box = $('fillings');
  const canOrder = view.jafflr.up !== false && view.chillybin.up === true;
  $('order-submit').disabled = ordering || !canOrder;
  if (!view.stock) return;
  if (fillingBoxes.size === 0) box.replaceChildren();
  for (const bay of view.stock.bays) {
    if (bay.name === 'bread') continue;
    let entry = fillingBoxes.get(bay.name);
    if (!entry) {
      const input = make('input', { type: 'checkbox', name: 'filling', value: bay.name, id: `filling-${bay.name}` });
      input.checked = bay.name === 'cheese';
      const note = make('span', { class: 'muted' });
      box.append(make('label', { for: input.id }, input, ` ${words(bay.name)} `, note));
      entry = { input, note };
      fillingBoxes.set(bay.name, entry);
    }
    const problem = bayProblem(bay);
    entry.input.disabled = Boolean(problem) || !canOrder;
    if (problem) entry.input.checked = false;
    entry.input.closest('label').dataset.problem = problem ? 'yes' : 'no';
    setText(entry.note, problem ? `(${problem})` : `${bay.available} left${bay.food_safety.state === 'use-soon' ? ', use soon' : ''}`);
  }
}

let ordering = false;

async function submitOrder(event) {
  event.preventDefault();
  if (ordering) return;
  const result = $('order-result');
  const nameInput = $('order-name');
  const body = {
    ingredients: [...fillingBoxes.entries()].filter(([, e]) => e.input.checked).map(([name]) => name),
    doneness: new FormData($('order-form')).get('doneness') || 'medium',
  };
  const name = nameInput.value.trim();
  if (name) body.name = name;
  ordering = true;
  $('order-submit').disabled = true;
  nameInput.removeAttribute('aria-invalid');
  say(result, 'Ordering…', 'busy');
  try {
    const order = await orderer.place(body, (attempt, tries) => say(result,
      `No answer from jafflr; trying again (${attempt} of ${tries}) with the same order, so it is not made twice…`, 'busy'));
    say(result, `Ordered ${order.id}${order.name ? ` for ${order.name}` : ''}: ready about ${clock(order.ready_at)} (in ${duration(order.time_left_s)}).`, 'ok');
    nameInput.value = '';
  } catch (error) {
    if (error instanceof HttpError) {
      say(result, `Not ordered: ${error.message}`, 'error');
      if (error.field === 'name') { nameInput.setAttribute('aria-invalid', 'true'); nameInput.focus(); }
    } else {
      say(result, `No answer from jafflr (${error.message}). The toastie may or may not have been ordered: press Order toastie again to retry; it will not be made twice.`, 'error');
    }
  } finally {
    ordering = false;
    pollSoon();
  }
}

// -- the STOP button -------------------------------------------------------------------
async function pressStop() {
  const said = $('estop-result');
  setText(said, 'Stopping…');
  for (let attempt = 1; attempt <= 3; attempt += 1) {
    try {
      view.status = await call('POST', '/v2/stop', { body: { by: 'kitchen panel' }, timeoutMs: 2500 });
      view.stopProblem = '';
      setText(said, 'Stop pressed: the machine is stopped.');
      render();
      pollSoon();
      return;
    } catch (error) {
      if (error instanceof HttpError) { view.stopProblem = `jafflr refused it: ${error.message}.`; break; }
      view.stopProblem = `jafflr did not answer (${error.message}).`;
    }
  }
  setText(said, 'The stop did not get through.');
  render();
}

$('order-form').addEventListener('submit', submitOrder);
$('estop').addEventListener('click', pressStop);
loop();
