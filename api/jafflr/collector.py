"""Prometheus gauges read from jafflr at scrape time."""
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from firmware.safety import AT_MACHINE


class JafflrCollector:
    def __init__(self, service):
        self.s = service

    def describe(self):
        return []

    def collect(self):
        s = self.s
        plate = s.controller.status()
        temp = GaugeMetricFamily('jafflr_plate_temperature_celsius', 'Press plate temperature')
        target = GaugeMetricFamily('jafflr_plate_target_celsius', 'Press plate target')
        if plate['temp_c'] is not None:
            temp.add_metric([], plate['temp_c'])
        if plate['target_c'] is not None:
            target.add_metric([], plate['target_c'])
        yield temp
        yield target
        yield GaugeMetricFamily('jafflr_heater_duty', 'Commanded heater duty (0-1)',
                                value=plate['duty'] or 0.0)
        yield GaugeMetricFamily('jafflr_heater_relay_on', 'Heater relay commanded on',
                                value=int(plate['relay_on']))
        fault = s.shutdown.fault
        latched = GaugeMetricFamily('jafflr_fault_latched', 'A fault is latched (1) with its reason',
                                    labels=['reason'])
        latched.add_metric([fault.reason if fault else ''], 1 if fault else 0)
        yield latched
        yield GaugeMetricFamily('jafflr_fault_needs_person',
                                'The latched fault needs a person at the machine (reset button '
                                'held, then the admin reset)',
                                value=int(s.shutdown.clearance() == AT_MACHINE))
        yield GaugeMetricFamily('jafflr_fault_restored',
                                'The latched fault was kept from before the last start',
                                value=int(bool(fault and fault.restored)))
        yield GaugeMetricFamily('jafflr_queue_length', 'Toasties waiting', value=len(s.book.queue))
        yield GaugeMetricFamily('jafflr_paused', 'The queue is paused: no new toastie starts',
                                value=int(s.assembler.paused))
        expires = GaugeMetricFamily('jafflr_pause_expires_timestamp',
                                    'When the pause ends by itself (Unix seconds); absent when '
                                    'not paused or paused with no expiry')
        if s.assembler.paused and s.kitchen.pause_expires is not None:
            expires.add_metric([], s.kitchen.pause_expires)
        yield expires
        yield GaugeMetricFamily('jafflr_busy', 'A toastie is being assembled or in the press',
                                value=int(s.kitchen.busy))
        outcomes = CounterMetricFamily('jafflr_orders', 'Toasties finished, by outcome',
                                       labels=['outcome'])
        for outcome, count in s.book.outcomes.items():
            outcomes.add_metric([outcome], count)
        yield outcomes
        yield from self._plate_loop(s)
        late = s.control_loop.lateness_summary()
        lateness = GaugeMetricFamily('jafflr_control_loop_recent_lateness_seconds',
                                     'Lateness of jafflr\'s link to the plate over the last 2000 ticks',
                                     labels=['quantile'])
        if late['count']:
            for q, key in (('0.5', 'p50_ms'), ('0.99', 'p99_ms'), ('1', 'max_ms')):
                lateness.add_metric([q], late[key] / 1000.0)
        yield lateness
        yield CounterMetricFamily('jafflr_control_loop_errors', 'Plate link steps that raised',
                                  value=s.control_loop.errors)

    @staticmethod
    def _plate_loop(s):
        """The heater control loop runs in the plate process: its lateness histogram and
        dead-man count, asked for at scrape time (absent while it does not answer)."""
        plate = s.jafflr.plate.metrics()
        yield GaugeMetricFamily('jafflr_plate_process_up', 'The plate process (heater control) '
                                'answers jafflr', value=int(plate is not None))
        if plate is None or 'lateness' not in plate:
            return
        late = plate['lateness']
        yield HistogramMetricFamily(
            'jafflr_control_loop_lateness_seconds', 'How late each heater control tick started '
            '(real seconds), in the plate process',
            buckets=[('+Inf' if le is None else repr(float(le)), count)
                     for le, count in late['buckets']], sum_value=late['sum'])
        yield CounterMetricFamily('jafflr_plate_deadman_stalls', 'Times the plate process\'s '
                                  'dead-man found its control loop stalled', value=plate['stalls'])
