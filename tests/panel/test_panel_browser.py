"""The kitchen panel as a person in the kitchen uses it: in headless chromium, against the
simulated machine, chillybin and jafflr running as processes (see conftest.py).

The tests share one machine (started once for the module) and run in file order: the
first toastie heats the plate, so the later ones do not wait for it again.
"""
import os
import re
import time

import pytest

from .conftest import ARTIFACTS

try:
    from playwright.sync_api import expect
except ImportError:       # the browser fixture says why it is missing (and fails under CI)
    expect = None

pytestmark = pytest.mark.browser

TOASTIE_S = 90        # real seconds a light toastie may take from cold at the test speed


def available(page, bay):
    text = page.locator(f'#stock-list li[data-bay="{bay}"] .bay-count').inner_text()
    return int(re.match(r'(\d+) available', text).group(1))


def order_row(page, oid):
    return page.locator(f'#queue-rows tr[data-order="{oid}"]')


def place_order(page, *fillings, doneness='Light', name=''):
    for filling in fillings:
        page.get_by_label(filling).check()
    page.get_by_label(doneness).check()
    if name:
        page.get_by_label('Name on the order').fill(name)
    page.get_by_role('button', name='Order toastie').click()
    result = page.locator('#order-result')
    expect(result).to_contain_text('Ordered t')
    return re.search(r'Ordered (t\d+)', result.inner_text()).group(1)


def screenshot(page, name):
    """What a person sees from the top of the page, and the whole page."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.evaluate('window.scrollTo(0, 0)')
    page.screenshot(path=os.path.join(ARTIFACTS, f'{name}.png'))
    page.screenshot(path=os.path.join(ARTIFACTS, f'{name}-full.png'), full_page=True)


def unlock_admin(page, token):
    page.get_by_label('Admin token').fill(token)
    page.get_by_role('button', name='Unlock admin').click()
    expect(page.get_by_role('button', name='Lock admin')).to_be_visible()


def test_panel_orders_a_cheese_and_vegemite_toastie_and_follows_it_to_done(page, unless_starved):
    unless_starved(lambda: order_and_follow(page))


def order_and_follow(page):
    expect(page.get_by_label('Cheese')).to_be_enabled()
    cheese, vegemite = available(page, 'cheese'), available(page, 'vegemite')
    oid = place_order(page, 'Cheese', 'Vegemite', name='Sam')
    row = order_row(page, oid)
    expect(row).to_contain_text('Sam')
    steps, progress = [], []
    deadline = time.monotonic() + TOASTIE_S
    while row.get_attribute('data-state') != 'done':
        assert row.get_attribute('data-state') != 'failed', row.inner_text()
        assert time.monotonic() < deadline, f'not done within {TOASTIE_S} s; steps seen: {steps}'
        step = page.locator('#now-step').inner_text()
        if step and (not steps or steps[-1] != step):
            steps.append(step)
        if step == 'Toasting':
            progress.append(int(page.locator('#now-bar').get_attribute('aria-valuenow')))
            expect(page.locator('#now-left')).to_contain_text('left')
        page.wait_for_timeout(200)
    assert 'Toasting' in steps and steps.index('Toasting') > 0, steps
    assert progress and progress[-1] > progress[0] >= 20, progress
    expect(row).to_contain_text('Done')
    expect(page.locator('#stock-list li[data-bay="cheese"] .bay-count')).to_contain_text(
        f'{cheese - 1} available')
    assert available(page, 'vegemite') == vegemite - 1


def test_panel_retry_after_a_network_blip_orders_once(page, machine, unless_starved):
    """The first answer is lost on the way back: the panel retries with the same key, and
    jafflr answers with the toastie it already queued."""
    unless_starved(lambda: order_through_a_blip(page, machine))


def order_through_a_blip(page, machine):
    machine.api('POST', '/v2/queue/pause', admin=True)      # it stays queued, to be cancelled
    keys = []

    def lose_first_answer(route):
        keys.append(route.request.headers.get('idempotency-key'))
        if len(keys) == 1:
            route.fetch()              # jafflr gets the order and answers ...
            route.abort('failed')      # ... and the answer never reaches the browser
        else:
            route.continue_()
    page.unroute('**/v2/toasties')
    page.route('**/v2/toasties', lose_first_answer)
    _, before = machine.api('GET', '/v2/toasties')
    oid = place_order(page, 'Cheese', doneness='Medium')
    _, after = machine.api('GET', '/v2/toasties')
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]
    assert len(after['orders']) == len(before['orders']) + 1
    row = order_row(page, oid)
    expect(row).to_have_attribute('data-state', 'queued')
    row.get_by_role('button', name=f'Cancel toastie {oid}').click()
    expect(row).to_have_attribute('data-state', 'cancelled')


def test_panel_fault_banner_says_what_to_do_and_admin_reset_clears_it(page, machine, unless_starved):
    unless_starved(lambda: open_the_lid_mid_order(page, machine))
    machine.sim('fault', 'lid-open', 'off')
    unlock_admin(page, machine.token())
    banner = page.locator('#fault')
    banner.get_by_role('button', name='Reset machine').click()
    expect(banner).to_have_count(0)
    expect(page.locator('#machine-state')).not_to_have_attribute('data-state', 'faulted')


def open_the_lid_mid_order(page, machine):
    oid = place_order(page, 'Cheese', doneness='Light')
    row = order_row(page, oid)
    expect(row).not_to_have_attribute('data-state', 'queued')
    machine.sim('fault', 'lid-open', 'on')
    banner = page.locator('#fault')
    expect(banner).to_contain_text('Machine fault: Lid open')
    expect(banner).to_contain_text('What to do: The lid is open: close it')
    expect(banner).to_contain_text('An admin resets the machine')
    expect(banner).to_contain_text('Cleared from this panel: once the cause is fixed')
    expect(page.locator('#machine-state')).to_have_attribute('data-state', 'faulted')
    expect(row).to_have_attribute('data-state', 'failed')
    expect(row).to_contain_text('Lid open')
    screenshot(page, 'fault-desktop')


def test_panel_fault_that_needs_a_person_says_so_and_clears_after_the_reset_button(
        page, machine, unless_starved):
    unless_starved(lambda: open_the_plate_probe(page, machine))
    unlock_admin(page, machine.token())
    banner = page.locator('#fault')
    banner.get_by_role('button', name='Reset machine').click()
    expect(page.locator('#admin-machine-result')).to_contain_text(
        'Not done: plate-sensor-open needs a person at the machine: hold the reset button')
    expect(banner).to_have_count(1)
    machine.hold_reset_button()
    expect(banner).to_contain_text('The reset button was held: an admin may press Reset')
    banner.get_by_role('button', name='Reset machine').click()
    expect(banner).to_have_count(0)
    expect(page.locator('#machine-state')).not_to_have_attribute('data-state', 'faulted')


def open_the_plate_probe(page, machine):
    machine.sim('fault', 'plate-sensor-open', 'on')
    banner = page.locator('#fault')
    expect(banner).to_contain_text('Machine fault: Plate sensor open')
    expect(banner).to_contain_text('Needs a person at the machine: look at it, hold the reset '
                                   'button on the machine for 2 seconds')
    expect(banner).to_contain_text('has not been held since this fault')
    machine.sim('fault', 'plate-sensor-open', 'off')


def test_panel_stop_button_is_reached_by_keyboard_and_stops_the_machine(page, machine,
                                                                        unless_starved):
    unless_starved(lambda: stop_by_keyboard(page, machine))


def stop_by_keyboard(page, machine):
    page.evaluate('document.activeElement.blur()')
    page.keyboard.press('Tab')
    expect(page.locator('.skip')).to_be_focused()
    page.keyboard.press('Tab')
    expect(page.locator('#estop')).to_be_focused()
    page.keyboard.press('Enter')
    expect(page.locator('#machine-state-text')).to_have_text('Stopped')
    expect(page.locator('#fault')).to_contain_text('Machine stopped')
    expect(page.locator('#fault')).to_contain_text('Someone pressed stop')
    _, status = machine.api('GET', '/v2/status')
    assert status['state'] == 'faulted' and status['fault']['reason'] == 'stopped', status
    assert 'kitchen panel' in status['fault']['detail']


def test_panel_admin_restocks_switches_a_flag_and_lists_events(page, machine):
    unlock_admin(page, machine.token())
    page.get_by_label('Cheese (now').fill('12')
    page.get_by_role('button', name='Restock').click()
    expect(page.locator('#restock-result')).to_contain_text('Restocked: cheese 12')
    expect(page.locator('#stock-list li[data-bay="cheese"] .bay-count')).to_contain_text('12 available')
    vegemite = page.locator('#fillings label', has_text='Vegemite')
    page.get_by_label('Vegemite (now').fill('0')
    page.get_by_role('button', name='Restock').click()
    expect(vegemite).to_contain_text('(out of stock)')
    expect(vegemite.get_by_role('checkbox')).to_be_disabled()
    page.get_by_label('Vegemite (now').fill('10')
    page.get_by_role('button', name='Restock').click()
    expect(vegemite.get_by_role('checkbox')).to_be_enabled()
    flag = page.get_by_label('pick-v2')
    expect(flag).to_be_checked()
    flag.uncheck()
    expect(page.locator('#flag-result')).to_contain_text('pick-v2 is off')
    _, flags = machine.api('GET', '/v2/flags')
    assert not next(f for f in flags['flags'] if f['name'] == 'pick-v2')['enabled']
    flag.check()
    expect(page.locator('#flag-result')).to_contain_text('pick-v2 is on')
    expect(page.locator('#event-rows')).to_contain_text('chillybin')
    expect(page.locator('#event-rows')).to_contain_text('restock: cheese')
    page.reload()      # the token is kept for this tab
    expect(page.get_by_role('button', name='Lock admin')).to_be_visible()


def test_panel_says_which_part_cannot_be_reached_and_recovers(page, machine):
    assert machine.stop('chillybin') == 0, machine.logs()
    expect(page.locator('#link-chillybin')).to_have_attribute('data-up', 'unreachable')
    expect(page.locator('#link-jafflr')).to_have_attribute('data-up', 'online')
    expect(page.locator('#down-chillybin')).to_contain_text('Cannot reach chillybin')
    expect(page.get_by_role('button', name='Order toastie')).to_be_disabled()
    machine.restart('chillybin')
    expect(page.locator('#link-chillybin')).to_have_attribute('data-up', 'online')
    expect(page.locator('#down-chillybin')).to_have_count(0)
    expect(page.get_by_role('button', name='Order toastie')).to_be_enabled()

    page.route('**/v2/**', lambda route: route.abort('connectionrefused'))   # the tablet's Wi-Fi drops
    expect(page.locator('#link-jafflr')).to_have_attribute('data-up', 'unreachable')
    expect(page.locator('#link-chillybin')).to_have_attribute('data-up', 'unknown')
    expect(page.locator('#down-jafflr')).to_contain_text('Cannot reach jafflr')
    page.unroute('**/v2/**')
    expect(page.locator('#link-jafflr')).to_have_attribute('data-up', 'online')
    expect(page.locator('#down-jafflr')).to_have_count(0)


def test_panel_alert_banner_and_a_bay_that_cannot_be_weighed(page, machine):
    machine.sim('fault', 'loadcell-nack:2', 'on')          # bay 2 holds the vegemite
    try:
        banner = page.locator('#alert-loadcell-vegemite')
        expect(banner).to_contain_text('Vegemite: The scale cannot be read')
        expect(banner).to_contain_text('check the load cell cable')
        expect(page.locator('#fillings label', has_text='Vegemite')).to_contain_text('(scale fault)')
        expect(page.get_by_role('checkbox', name='Vegemite')).to_be_disabled()
        expect(page.locator('#stock-list li[data-bay="vegemite"] .badge')).to_have_text('Scale fault')
    finally:
        machine.sim('fault', 'loadcell-nack:2', 'off')
    expect(page.locator('#alert-loadcell-vegemite')).to_have_count(0)
    expect(page.get_by_role('checkbox', name='Vegemite')).to_be_enabled()


# The WCAG AA contrast of every piece of visible text against what is behind it.
CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || c[3] > 0.9) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent.trim()).join('');
    if (!text || !el.getClientRects().length || el.closest('svg, .visually-hidden')) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden') continue;
    const [a, b] = [lum(rgb(style.color)), lum(background(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) bad.push(`${text.slice(0, 30)}: ${ratio.toFixed(2)}`);
  }
  return bad;
}"""


@pytest.mark.parametrize('size,width,height', [('phone', 390, 844), ('desktop', 1366, 900)])
def test_panel_fits_phone_and_desktop_with_stop_on_screen_and_readable_text(page, size, width,
                                                                            height):
    page.set_viewport_size({'width': width, 'height': height})
    expect(page.locator('#stock-list li[data-bay="cheese"]')).to_be_visible()
    page.wait_for_timeout(1200)                # one more update: the charts redraw at this size
    screenshot(page, size)
    assert page.evaluate('document.documentElement.scrollWidth') <= width
    assert page.evaluate(CONTRAST) == []
    for where in ('top', 'bottom'):
        page.evaluate(f'window.scrollTo(0, {"0" if where == "top" else "document.body.scrollHeight"})')
        box = page.locator('#estop').bounding_box()
        assert box['y'] >= 0 and box['y'] + box['height'] <= height, (where, box)
        assert box['height'] >= 60 and box['width'] >= 150, box
