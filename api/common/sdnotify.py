"""systemd's notify protocol: one datagram to $NOTIFY_SOCKET. A no-op when not under systemd."""
import os
import socket


class Notifier:
    def __init__(self, env=os.environ):
        address = env.get('NOTIFY_SOCKET')
        if address and address.startswith('@'):
            address = '\0' + address[1:]      # an abstract socket
        self.address = address
        self._sock = None
        if address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        watchdog_usec = env.get('WATCHDOG_USEC')
        watchdog_pid = env.get('WATCHDOG_PID')
        self.watchdog_s = (int(watchdog_usec) / 1e6 if watchdog_usec and
                           (not watchdog_pid or watchdog_pid == str(os.getpid())) else None)

    @property
    def enabled(self):
        return self._sock is not None

    def notify(self, *assignments):
        """notify('READY=1', 'STATUS=serving') -> sent as one datagram."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto('\n'.join(assignments).encode(), self.address)
            return True
        except OSError:
            return False

    def ready(self, status=''):
        return self.notify('READY=1', f'STATUS={status}', f'MAINPID={os.getpid()}')

    def stopping(self, status=''):
        return self.notify('STOPPING=1', f'STATUS={status}')

    def watchdog(self):
        return self.notify('WATCHDOG=1')
