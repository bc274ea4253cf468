// The admin view: behind the admin token (entered once, kept for this tab in
// sessionStorage, sent as a bearer token). Reset, pause, restock and calibrate bays
// (jafflr forwards these to chillybin), feature flags, and both services' recent events.

import { adminToken, call, HttpError } from './api.js';
import { $, clock, make, say, setText, words } from './dom.js';

const REFRESH_TICKS = 5;     // flags and events: every five panel updates

export class Admin {
  constructor({ pollSoon, changed }) {
    this.pollSoon = pollSoon;
    this.changed = changed;
    this.unlocked = false;
    this.view = null;
    this.bays = '';
    this.flagItems = new Map();
    $('admin-login').addEventListener('submit', (e) => { e.preventDefault(); this.unlock($('admin-token').value.trim()); });
    $('admin-lock').addEventListener('click', () => this.lock('Admin locked.'));
    $('admin-reset').addEventListener('click', () => this.reset());
    $('admin-pause').addEventListener('click', () => this.pause());
    $('restock-form').addEventListener('submit', (e) => { e.preventDefault(); this.restock(); });
    $('calibrate-form').addEventListener('submit', (e) => { e.preventDefault(); this.calibrate(); });
    if (adminToken.get()) this.unlock(adminToken.get(), true);
  }

  async unlock(token, quiet = false) {
    const result = $('admin-login-result');
    if (!token) { say(result, 'Enter the admin token (it is in the admin-token file on the machine).', 'error'); return; }
    adminToken.set(token);
    try {
      await call('GET', '/v2/admin/check', { admin: true });
      $('admin-token').value = '';
      say(result, '');
      this.show(true);
      $('admin-lock').focus();
    } catch (error) {
      if (error instanceof HttpError && error.status === 401) {
        adminToken.clear();
        say(result, 'That is not the admin token.', 'error');
      } else if (!quiet) {
        say(result, `The token could not be checked: ${error.message}. Try again.`, 'error');
      }
    }
  }

  lock(message) {
    adminToken.clear();
    this.show(false);
    say($('admin-login-result'), message, message.includes('refused') ? 'error' : '');
  }

  show(on) {
    this.unlocked = on;
    $('admin-tools').hidden = !on;
    $('admin-login').hidden = on;
    this.changed();
    if (on && this.view) this.refresh();
  }

  // Runs an admin request; a refused token locks the view again and says so.
  async act(request, resultNode, okText) {
    say(resultNode, 'Working…', 'busy');
    try {
      const answer = await request();
      say(resultNode, okText(answer), 'ok');
      this.pollSoon();
      return answer;
    } catch (error) {
      if (error instanceof HttpError && error.status === 401) {
        this.lock('The admin token was refused; enter it again.');
      }
      say(resultNode, `Not done: ${error.message}`, 'error');
      return null;
    }
  }

  reset() {
    return this.act(() => call('POST', '/v2/reset', { admin: true }), $('admin-machine-result'),
      () => 'Reset: the machine clears its tray and press, then takes toasties again.');
  }

  pause() {
    const paused = this.view && this.view.status && this.view.status.paused;
    return this.act(() => call('POST', `/v2/queue/${paused ? 'resume' : 'pause'}`, { admin: true }),
      $('admin-machine-result'), () => (paused ? 'The queue runs again.' : 'Paused: the toastie in the machine finishes, no new one starts.'));
  }

  restock() {
    const items = {};
    for (const input of $('restock-bays').querySelectorAll('input')) {
      if (input.value.trim() !== '') items[input.dataset.bay] = Number(input.value);
    }
    const result = $('restock-result');
    if (!Object.keys(items).length) { say(result, 'Enter how many units are now in at least one bay.', 'error'); return null; }
    const body = { items, replaced: $('restock-replaced').checked };
    return this.act(() => call('POST', '/v2/chillybin/restock', { body, admin: true, timeoutMs: 10000 }), result, () => {
      for (const input of $('restock-bays').querySelectorAll('input')) input.value = '';
      return `Restocked: ${Object.entries(items).map(([n, u]) => `${n} ${u}`).join(', ')}.`;
    });
  }

  calibrate() {
    const bay = $('calibrate-bay').value;
    const step = new FormData($('calibrate-form')).get('calibrate-step');
    const body = { step };
    if (step === 'span') body.known_g = Number($('calibrate-grams').value);
    return this.act(() => call('POST', `/v2/chillybin/bays/${encodeURIComponent(bay)}/calibrate`, { body, admin: true, timeoutMs: 10000 }),
      $('calibrate-result'), () => `Calibrated ${bay}: ${step} done.`);
  }

  // Called after every panel update with what the panel knows.
  update(view, tick) {
    this.view = view;
    if (!this.unlocked) return;
    const st = view.status;
    $('admin-reset').disabled = !(st && st.fault);
    setText($('admin-pause'), st && st.paused ? 'Resume queue' : 'Pause queue');
    this.renderBays(view.stock);
    if (tick % REFRESH_TICKS === 0) this.refresh();
  }

  renderBays(stock) {
    if (!stock) return;
    const names = stock.bays.map((b) => b.name);
    if (names.join() !== this.bays) {
      this.bays = names.join();
      $('restock-bays').replaceChildren(...stock.bays.map((b) => make('p', { class: 'restock-row' },
        make('label', { for: `restock-${b.name}` }, `${words(b.name)} `, make('span', { class: 'muted', 'data-now': b.name })),
        make('input', { id: `restock-${b.name}`, type: 'number', min: '0', max: '50', step: '1', inputmode: 'numeric', 'data-bay': b.name }))));
      const select = $('calibrate-bay');
      select.replaceChildren(...names.map((n) => make('option', { value: n, text: words(n) })));
    }
    for (const b of stock.bays) {
      const now = $('restock-bays').querySelector(`[data-now="${b.name}"]`);
      if (now) setText(now, `(now ${b.units === null ? 'unknown' : b.units})`);
    }
  }

  async refresh() {
    const [flags, ours, bins] = await Promise.allSettled([
      call('GET', '/v2/flags'), call('GET', '/v2/events?limit=20'), call('GET', '/v2/chillybin/events?limit=20')]);
    if (flags.status === 'fulfilled') this.renderFlags(flags.value.flags);
    const events = [];
    if (ours.status === 'fulfilled') events.push(...ours.value.events.map((e) => ({ ...e, where: 'jafflr' })));
    if (bins.status === 'fulfilled') events.push(...bins.value.events.map((e) => ({ ...e, where: 'chillybin' })));
    events.sort((a, b) => b.wall - a.wall);
    $('event-rows').replaceChildren(...events.slice(0, 30).map((e) => make('tr', {},
      make('td', { text: clock(e.wall) }), make('td', { text: e.where }),
      make('td', { text: [e.kind, e.bay, e.order, e.reason, e.detail].filter(Boolean).join(': ') }))));
    if (bins.status === 'rejected') {
      $('event-rows').append(make('tr', {}, make('td', { colspan: '3', text: `chillybin's events are not available: ${bins.reason.message}` })));
    }
  }

  renderFlags(flags) {
    for (const flag of flags) {
      let item = this.flagItems.get(flag.name);
      if (!item) {
        const input = make('input', { type: 'checkbox', id: `flag-${flag.name}` });
        input.addEventListener('change', () => this.setFlag(flag.name, input));
        const note = make('span', { class: 'muted small' });
        item = { input, note };
        $('flag-list').append(make('li', {}, make('label', { for: input.id }, input, ` ${flag.name} `), note));
        this.flagItems.set(flag.name, item);
      }
      item.input.checked = flag.env_override === null || flag.env_override === undefined ? flag.enabled : flag.env_override;
      item.input.disabled = flag.env_override !== null && flag.env_override !== undefined;
      setText(item.note, `${flag.description || ''}${item.input.disabled ? ` (fixed by ${flag.env_variable})` : ''}`);
    }
  }

  setFlag(name, input) {
    return this.act(() => call('PUT', `/v2/flags/${encodeURIComponent(name)}`, { body: { enabled: input.checked }, admin: true }),
      $('flag-result'), (flag) => `${name} is ${flag.enabled ? 'on' : 'off'}.`);
  }
}
